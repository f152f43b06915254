-- Fewer writes per job (issue 17).
--
-- claim_attempts: many claims in one call (a fetched batch's, or the fetcher's claims at main sent
-- together), each through claim_attempt, in id order so that two calls lock their jobs in the
-- same order; each answer carries its claim's place in the call (n). Only claims without a concurrency or rate gate come here: a gate's lock is taken
-- after its job's, and a second job after a gate would break that order.
CREATE FUNCTION claim_attempts(p_claims jsonb)
RETURNS TABLE (n integer, outcome text, wait_ms integer)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  c record;
BEGIN
  FOR c IN
    SELECT * FROM jsonb_to_recordset(p_claims) AS x(n integer, id uuid, attempt integer, ran_on text, claim_seconds integer)
    ORDER BY x.id, x.n
  LOOP
    RETURN QUERY SELECT c.n, r.outcome, r.wait_ms FROM claim_attempt(c.id, c.attempt, c.ran_on, NULL, NULL, c.claim_seconds) r;
  END LOOP;
END
$$;

-- apply_job_event, fourth version: the same effects with one write to the job's row per event
-- (its state and the count of events applied together), and an attempt's end as one upsert of its
-- execution.
CREATE OR REPLACE FUNCTION apply_job_event(p_job uuid, p_seq integer, p_type text, p_attempt integer, p_at timestamptz,
                                p_state text, p_started_at timestamptz, p_finished_at timestamptz,
                                p_progress integer, p_message text, p_error jsonb, p_peak_rss_mb integer)
RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  v_applied integer;
  v_state   text;
  v_route   text;
BEGIN
  SELECT events_applied, state, route INTO v_applied, v_state, v_route FROM jobs WHERE id = p_job FOR UPDATE;
  IF NOT FOUND OR p_seq <= v_applied THEN
    RETURN false;
  END IF;
  -- a job finished, cancelled or taken over here stays so; its events are still counted as applied
  IF v_state IN ('completed', 'failed', 'cancelled') OR v_route <> 'fetcher' THEN
    UPDATE jobs SET events_applied = p_seq, updated_at = clock_timestamp() WHERE id = p_job;
    RETURN true;
  END IF;

  IF p_type = 'active' THEN
    INSERT INTO executions (job_id, attempt, ran_on, started_at, outcome)
    VALUES (p_job, p_attempt, 'fetcher', coalesce(p_started_at, p_at), 'running')
    ON CONFLICT (job_id, attempt) DO NOTHING;
    UPDATE jobs SET events_applied = p_seq, updated_at = clock_timestamp(),
           state = 'active', attempts = greatest(attempts, p_attempt),
           started_at = coalesce(started_at, p_started_at, p_at)
     WHERE id = p_job;
  ELSIF p_type = 'progress' THEN
    UPDATE jobs SET events_applied = p_seq, updated_at = clock_timestamp(),
           progress = coalesce(p_progress, progress), progress_message = p_message
     WHERE id = p_job;
  ELSE
    -- completed, failed or lost: the attempt ends (its execution made here if the 'active' event never came)
    INSERT INTO executions AS e (job_id, attempt, ran_on, started_at, outcome, finished_at, error, peak_rss_mb)
    VALUES (p_job, p_attempt, 'fetcher', coalesce(p_started_at, p_at), p_type, coalesce(p_finished_at, p_at), p_error, p_peak_rss_mb)
    ON CONFLICT (job_id, attempt) DO UPDATE
      SET outcome = excluded.outcome, finished_at = excluded.finished_at, error = excluded.error,
          peak_rss_mb = coalesce(excluded.peak_rss_mb, e.peak_rss_mb);
    UPDATE jobs SET events_applied = p_seq, updated_at = clock_timestamp(),
      state = CASE
        WHEN p_type = 'completed' THEN 'completed'
        WHEN p_state = 'failed' THEN 'failed'
        ELSE 'forwarded'              -- the fetcher retries it
      END,
      attempts = greatest(attempts, p_attempt),
      started_at = coalesce(started_at, p_started_at),
      -- the attempt is over: its claim ends with it
      claimed_by = CASE WHEN claimed_by = 'fetcher' AND attempts <= p_attempt THEN NULL ELSE claimed_by END,
      claim_expires_at = CASE WHEN claimed_by = 'fetcher' AND attempts <= p_attempt THEN NULL ELSE claim_expires_at END,
      error = CASE WHEN p_type = 'completed' THEN NULL ELSE coalesce(p_error, error) END,
      progress = CASE WHEN p_type = 'completed' THEN 100 ELSE progress END,
      finished_at = CASE WHEN p_type = 'completed' OR p_state = 'failed' THEN coalesce(p_finished_at, p_at) ELSE NULL END
     WHERE id = p_job;
  END IF;
  RETURN true;
END
$$;

-- The execution trigger asks whether this ledger emits events before it reads the job: main's
-- ledger never does, and no longer pays for the read on every attempt.
CREATE OR REPLACE FUNCTION executions_emit() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  v_job record;
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.outcome = OLD.outcome THEN
    RETURN NULL;
  END IF;
  IF NOT coalesce((SELECT (value #>> '{}')::boolean FROM ledger_settings WHERE key = 'emit_events'), false) THEN
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
