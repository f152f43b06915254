-- The job-event outbox: every state change of a job (attempt started, progress, completed,
-- failed, lost) becomes a row here in the same transaction as the change itself, numbered per
-- job, until it has been delivered. Only a ledger whose settings say emit_events records them
-- (the fetcher's: its events go back to main).
CREATE TABLE ledger_settings (
  key    text PRIMARY KEY,
  value  jsonb NOT NULL
);

ALTER TABLE jobs ADD COLUMN event_seq integer NOT NULL DEFAULT 0;

CREATE TABLE job_events (
  seq       bigserial PRIMARY KEY,
  job_id    uuid NOT NULL,
  job_seq   integer NOT NULL,
  type      text NOT NULL CHECK (type IN ('active', 'progress', 'completed', 'failed', 'lost')),
  attempt   integer NOT NULL,
  at        timestamptz NOT NULL DEFAULT clock_timestamp(),
  data      jsonb NOT NULL DEFAULT '{}',
  UNIQUE (job_id, job_seq)
);

CREATE FUNCTION emit_job_event(p_job uuid, p_type text, p_attempt integer, p_data jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  v_seq integer;
BEGIN
  IF NOT coalesce((SELECT (value #>> '{}')::boolean FROM ledger_settings WHERE key = 'emit_events'), false) THEN
    RETURN;
  END IF;
  UPDATE jobs SET event_seq = event_seq + 1 WHERE id = p_job RETURNING event_seq INTO v_seq;
  INSERT INTO job_events (job_id, job_seq, type, attempt, data) VALUES (p_job, v_seq, p_type, p_attempt, p_data);
END
$$;

-- Attempts: started (running), completed, failed, lost. The job's state after the change rides along.
CREATE FUNCTION executions_emit() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  v_job record;
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.outcome = OLD.outcome THEN
    RETURN NULL;
  END IF;
  SELECT state, max_attempts INTO v_job FROM jobs WHERE id = NEW.job_id;
  PERFORM emit_job_event(
    NEW.job_id,
    CASE NEW.outcome WHEN 'running' THEN 'active' ELSE NEW.outcome END,
    NEW.attempt,
    jsonb_strip_nulls(jsonb_build_object(
      'state', v_job.state,
      'maxAttempts', v_job.max_attempts,
      'startedAt', NEW.started_at,
      'finishedAt', NEW.finished_at,
      'error', NEW.error,
      'peakRssMb', NEW.peak_rss_mb)));
  RETURN NULL;
END
$$;

CREATE TRIGGER executions_emit AFTER INSERT OR UPDATE OF outcome ON executions
  FOR EACH ROW EXECUTE FUNCTION executions_emit();

CREATE FUNCTION jobs_progress_emit() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  IF NEW.state = 'active' AND (NEW.progress IS DISTINCT FROM OLD.progress OR NEW.progress_message IS DISTINCT FROM OLD.progress_message) THEN
    PERFORM emit_job_event(NEW.id, 'progress', NEW.attempts,
      jsonb_strip_nulls(jsonb_build_object('progress', NEW.progress, 'message', NEW.progress_message)));
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER jobs_progress_emit AFTER UPDATE OF progress, progress_message ON jobs
  FOR EACH ROW EXECUTE FUNCTION jobs_progress_emit();
