-- Schedules kept in PostgreSQL (issue 18): the code's `cron` (one row per job, source 'code', which
-- an admin may disable and enable but not edit) and schedules made at run time from the admin, the
-- API or the CLI (source 'runtime'). Each enabled row is a pg-boss schedule keyed by its id; pg-boss
-- fires it once per slot however many processes run.
CREATE TABLE schedules (
  id          uuid PRIMARY KEY,
  name        text NOT NULL,
  schedule    text NOT NULL,
  time_zone   text NOT NULL DEFAULT 'UTC',
  payload     jsonb NOT NULL DEFAULT '{}',
  enabled     boolean NOT NULL DEFAULT true,
  source      text NOT NULL CHECK (source IN ('code', 'runtime')),
  created_by  text NOT NULL,
  updated_by  text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX schedules_from_code ON schedules (name) WHERE source = 'code';

-- Each firing of a schedule and the job it enqueued, written in the enqueue's transaction: a firing
-- pg-boss hands out again (its worker died before it completed) finds itself here and enqueues
-- nothing. `firing`: the pg-boss firing's id, or a new one for a run-now.
CREATE TABLE schedule_runs (
  schedule_id  uuid NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
  firing       text NOT NULL,
  job_id       uuid,
  manual       boolean NOT NULL DEFAULT false,
  fired_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (schedule_id, firing)
);
CREATE INDEX schedule_runs_recent ON schedule_runs (schedule_id, fired_at DESC);
