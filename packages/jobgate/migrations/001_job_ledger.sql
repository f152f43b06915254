-- The job ledger: one row per performLater, whichever side runs it. Main's ledger is the source of
-- truth for a job's state; pg-boss's own tables hold the queue mechanics.
CREATE TABLE jobs (
  id                uuid PRIMARY KEY,
  name              text NOT NULL,
  route             text NOT NULL CHECK (route IN ('main', 'fetcher')),
  state             text NOT NULL CHECK (state IN ('queued', 'forwarding', 'forwarded', 'active', 'completed', 'failed', 'cancelled')),
  payload           jsonb NOT NULL,
  priority          integer NOT NULL DEFAULT 0,
  unique_key        text,
  progress          smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
  progress_message  text,
  attempts          integer NOT NULL DEFAULT 0,
  max_attempts      integer NOT NULL,
  run_at            timestamptz NOT NULL,
  error             jsonb,
  claimed_by        text,
  claim_expires_at  timestamptz,
  created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
  started_at        timestamptz,
  finished_at       timestamptz
);

-- `unique: true` jobs: no second live job with the same payload, on either route.
CREATE UNIQUE INDEX jobs_unique_live ON jobs (name, unique_key)
  WHERE unique_key IS NOT NULL AND state IN ('queued', 'forwarding', 'forwarded', 'active');

-- Listing newest first with keyset paging, alone or filtered by state, name or route.
CREATE INDEX jobs_by_created ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_by_state ON jobs (state, created_at DESC, id DESC);
CREATE INDEX jobs_by_name ON jobs (name, created_at DESC, id DESC);
CREATE INDEX jobs_by_route ON jobs (route, created_at DESC, id DESC);
-- Counting claims for `concurrency`.
CREATE INDEX jobs_active_by_name ON jobs (name) WHERE state = 'active';
-- Cleanup of finished jobs.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

-- One row per attempt. An attempt cut short by a crash is marked `lost` when the next one starts
-- (or when the queue gives the job up).
CREATE TABLE executions (
  job_id       uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  attempt      integer NOT NULL,
  ran_on       text NOT NULL CHECK (ran_on IN ('main', 'fetcher')),
  started_at   timestamptz NOT NULL,
  finished_at  timestamptz,
  outcome      text NOT NULL CHECK (outcome IN ('running', 'completed', 'failed', 'lost')),
  error        jsonb,
  peak_rss_mb  integer,
  PRIMARY KEY (job_id, attempt)
);

-- One row per job name that has a `concurrency` or `rateLimit`: the lock that serializes claims
-- across every process, and the start times of the last second for the rate limit.
CREATE TABLE job_gates (
  name    text PRIMARY KEY,
  starts  timestamptz[] NOT NULL DEFAULT '{}'
);

-- Claims one attempt of a job for a runner, atomically:
--   'gone'    the job is finished or cancelled: do not run it;
--   'wait'    a concurrency slot or a rate-limit start is not free yet: try again after wait_ms;
--   'claimed' the job is now active under this runner, with an execution row for the attempt,
--             and any earlier attempt still marked running is marked lost.
-- Jobs without limits never take the gate lock.
CREATE FUNCTION claim_attempt(p_id uuid, p_attempt integer, p_ran_on text, p_concurrency integer,
                              p_per_second integer, p_claim_seconds integer)
RETURNS TABLE (outcome text, wait_ms integer)
LANGUAGE plpgsql
SET search_path FROM CURRENT   -- our schema, whatever the caller's search_path
AS $$
DECLARE
  v_name   text;
  v_state  text;
  v_starts timestamptz[];
  v_active integer;
  v_now    timestamptz;
  v_n      integer;
BEGIN
  SELECT j.name, j.state INTO v_name, v_state FROM jobs j WHERE j.id = p_id;
  IF NOT FOUND OR v_state IN ('completed', 'failed', 'cancelled') THEN
    RETURN QUERY SELECT 'gone'::text, 0;
    RETURN;
  END IF;

  IF p_concurrency IS NOT NULL OR p_per_second IS NOT NULL THEN
    INSERT INTO job_gates (name) VALUES (v_name) ON CONFLICT DO NOTHING;
    SELECT g.starts INTO v_starts FROM job_gates g WHERE g.name = v_name FOR UPDATE;
    v_now := clock_timestamp();   -- read after the lock, so starts are recorded in order

    IF p_concurrency IS NOT NULL THEN
      SELECT count(*) INTO v_active FROM jobs j
       WHERE j.name = v_name AND j.state = 'active' AND j.id <> p_id AND j.claim_expires_at > v_now;
      IF v_active >= p_concurrency THEN
        RETURN QUERY SELECT 'wait'::text, 200;
        RETURN;
      END IF;
    END IF;

    IF p_per_second IS NOT NULL THEN
      v_starts := ARRAY(SELECT s FROM unnest(v_starts) s WHERE s > v_now - interval '1 second' ORDER BY s);
      v_n := cardinality(v_starts);
      IF v_n >= p_per_second THEN
        -- the start that leaves the window next frees the slot
        RETURN QUERY SELECT 'wait'::text,
          greatest(1, ceil(extract(epoch FROM (v_starts[v_n - p_per_second + 1] + interval '1 second' - v_now)) * 1000)::integer);
        RETURN;
      END IF;
      UPDATE job_gates SET starts = v_starts || v_now WHERE name = v_name;
    END IF;
  ELSE
    v_now := clock_timestamp();
  END IF;

  UPDATE executions e SET outcome = 'lost', finished_at = v_now,
         error = jsonb_build_object('code', 'JG_JOB_LOST', 'message', 'the attempt was cut short (process crashed or was killed)')
   WHERE e.job_id = p_id AND e.outcome = 'running' AND e.attempt < p_attempt;

  UPDATE jobs SET state = 'active', attempts = greatest(attempts, p_attempt), claimed_by = p_ran_on,
         claim_expires_at = v_now + p_claim_seconds * interval '1 second',
         started_at = coalesce(started_at, v_now), updated_at = v_now
   WHERE id = p_id;

  INSERT INTO executions (job_id, attempt, ran_on, started_at, outcome)
  VALUES (p_id, p_attempt, p_ran_on, v_now, 'running')
  ON CONFLICT (job_id, attempt) DO UPDATE
    SET ran_on = excluded.ran_on, started_at = excluded.started_at, outcome = 'running', finished_at = NULL, error = NULL;

  RETURN QUERY SELECT 'claimed'::text, 0;
END
$$;
