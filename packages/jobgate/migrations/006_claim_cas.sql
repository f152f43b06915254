-- Fixes from review (2026-11-23):
-- claim_attempt() becomes a real compare-and-set: an attempt may not take a job whose claim is
-- held, unexpired, by another attempt (a runner that lost pg-boss's heartbeat but is still
-- working keeps it until its claim lapses). apply_job_event() clears an earlier attempt's error
-- when the job completes.

CREATE OR REPLACE FUNCTION claim_attempt(p_id uuid, p_attempt integer, p_ran_on text, p_concurrency integer,
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
  v_attempts integer;
  v_expires  timestamptz;
BEGIN
  -- the job's row lock serializes claims of one job (always taken before a gate lock)
  SELECT j.name, j.state, j.attempts, j.claim_expires_at INTO v_name, v_state, v_attempts, v_expires
    FROM jobs j WHERE j.id = p_id FOR UPDATE;
  IF NOT FOUND OR v_state IN ('completed', 'failed', 'cancelled') THEN
    RETURN QUERY SELECT 'gone'::text, 0;
    RETURN;
  END IF;
  -- Compare-and-set: another attempt whose claim is still alive keeps the job; this one waits
  -- until that claim ends or expires (its runner stopped refreshing it).
  IF v_state = 'active' AND v_attempts <> p_attempt AND v_expires > clock_timestamp() THEN
    RETURN QUERY SELECT 'wait'::text,
      least(1000, greatest(1, ceil(extract(epoch FROM (v_expires - clock_timestamp())) * 1000)::integer));
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
BEGIN
  SELECT events_applied, state INTO v_applied, v_state FROM jobs WHERE id = p_job FOR UPDATE;
  IF NOT FOUND OR p_seq <= v_applied THEN
    RETURN false;
  END IF;
  UPDATE jobs SET events_applied = p_seq, updated_at = clock_timestamp() WHERE id = p_job;
  -- a job finished or cancelled here stays so; its events are still counted as applied
  IF v_state IN ('completed', 'failed', 'cancelled') THEN
    RETURN true;
  END IF;

  IF p_type = 'active' THEN
    INSERT INTO executions (job_id, attempt, ran_on, started_at, outcome)
    VALUES (p_job, p_attempt, 'fetcher', coalesce(p_started_at, p_at), 'running')
    ON CONFLICT (job_id, attempt) DO NOTHING;
    UPDATE jobs SET state = 'active', attempts = greatest(attempts, p_attempt),
           started_at = coalesce(started_at, p_started_at, p_at)
     WHERE id = p_job;
  ELSIF p_type = 'progress' THEN
    UPDATE jobs SET progress = coalesce(p_progress, progress), progress_message = p_message WHERE id = p_job;
  ELSE
    -- completed, failed or lost: the attempt ends; an execution row the 'active' event would have
    -- made is made here if that event never came
    INSERT INTO executions (job_id, attempt, ran_on, started_at, outcome)
    VALUES (p_job, p_attempt, 'fetcher', coalesce(p_started_at, p_at), 'running')
    ON CONFLICT (job_id, attempt) DO NOTHING;
    UPDATE executions SET outcome = p_type, finished_at = coalesce(p_finished_at, p_at), error = p_error,
           peak_rss_mb = coalesce(p_peak_rss_mb, peak_rss_mb)
     WHERE job_id = p_job AND attempt = p_attempt;
    UPDATE jobs SET
      state = CASE
        WHEN p_type = 'completed' THEN 'completed'
        WHEN p_state = 'failed' THEN 'failed'
        ELSE 'forwarded'              -- the fetcher retries it
      END,
      attempts = greatest(attempts, p_attempt),
      error = CASE WHEN p_type = 'completed' THEN NULL ELSE coalesce(p_error, error) END,
      progress = CASE WHEN p_type = 'completed' THEN 100 ELSE progress END,
      finished_at = CASE WHEN p_type = 'completed' OR p_state = 'failed' THEN coalesce(p_finished_at, p_at) ELSE NULL END
     WHERE id = p_job;
  END IF;
  RETURN true;
END
$$;
