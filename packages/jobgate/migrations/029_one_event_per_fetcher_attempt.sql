-- A routed job's attempt on the fetcher no longer writes a running row, nor sends an 'active'
-- event: main granted the attempt before it started (the fetcher's claim at main), and main's
-- grant already shows it running there. The fetcher's outbox gets one event where the attempt
-- ends (completed, failed, lost) and one per progress step, no more: the end of a completing
-- attempt is written by the statement that completes its job (store/ledger.ts finishAttempt), the
-- others by their execution rows as before.
--
-- claim_ledger_attempt as in 026 (renamed by 028), but its running row is written only when the
-- caller asks for it (`p_running_row`: the previous release's claims, through the six-argument
-- claim_attempt, whose code ends an attempt by updating that row and sends its events from it).
CREATE OR REPLACE FUNCTION claim_ledger_attempt(p_id uuid, p_attempt integer, p_ran_on text, p_concurrency integer, p_per_second integer, p_claim_seconds integer, p_running_row boolean)
RETURNS TABLE (outcome text, wait_ms integer)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  v_name     text;
  v_state    text;
  v_route    text;
  v_starts   timestamptz[];
  v_active   integer;
  v_now      timestamptz;
  v_n        integer;
  v_attempts integer;
  v_expires  timestamptz;
  v_by       text;
  v_began    timestamptz;
BEGIN
  -- the job's row lock serializes claims of one job (always taken before a gate lock)
  SELECT j.name, j.state, j.route, j.attempts, j.claim_expires_at, j.claimed_by, coalesce(j.attempt_started_at, j.started_at)
    INTO v_name, v_state, v_route, v_attempts, v_expires, v_by, v_began
    FROM jobs j WHERE j.id = p_id FOR UPDATE;
  IF NOT FOUND OR v_state IN ('completed', 'failed', 'cancelled') OR v_route <> p_ran_on THEN
    RETURN QUERY SELECT 'gone'::text, 0;
    RETURN;
  END IF;
  -- A paused job (its name, or every job: '*') does not start: its runner hands it back to the queue.
  IF pause_of(v_name) IS NOT NULL THEN
    RETURN QUERY SELECT 'paused'::text, 1000;
    RETURN;
  END IF;
  -- Compare-and-set: another attempt whose claim is still alive keeps the job; this one waits
  -- until that claim ends or expires (its runner stopped refreshing it).
  IF v_state = 'active' AND (v_attempts <> p_attempt OR v_by IS DISTINCT FROM p_ran_on) AND v_expires > clock_timestamp() THEN
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
        RETURN QUERY SELECT 'wait'::text,
          greatest(1, ceil(extract(epoch FROM (v_starts[v_n - p_per_second + 1] + interval '1 second' - v_now)) * 1000)::integer);
        RETURN;
      END IF;
      UPDATE job_gates SET starts = v_starts || v_now WHERE name = v_name;
    END IF;
  ELSE
    v_now := clock_timestamp();
  END IF;

  -- earlier attempts cut short: their running rows, and the one that held the job without a row
  UPDATE executions e SET outcome = 'lost', finished_at = v_now,
         error = jsonb_build_object('code', 'JG_JOB_LOST', 'message', 'the attempt was cut short (process crashed or was killed)')
   WHERE e.job_id = p_id AND e.outcome = 'running' AND e.attempt < p_attempt;
  IF v_state = 'active' AND v_attempts BETWEEN 1 AND p_attempt - 1 THEN
    INSERT INTO executions (job_id, attempt, ran_on, started_at, outcome, finished_at, error)
    VALUES (p_id, v_attempts, coalesce(v_by, v_route), coalesce(v_began, v_now), 'lost', v_now,
            jsonb_build_object('code', 'JG_JOB_LOST', 'message', 'the attempt was cut short (process crashed or was killed)'))
    ON CONFLICT (job_id, attempt) DO NOTHING;
  END IF;

  UPDATE jobs SET state = 'active', attempts = greatest(attempts, p_attempt), claimed_by = p_ran_on,
         claim_expires_at = v_now + p_claim_seconds * interval '1 second',
         started_at = coalesce(started_at, v_now), attempt_started_at = v_now, attempt_peak_rss_mb = NULL,
         updated_at = v_now
   WHERE id = p_id;

  IF p_running_row THEN
    INSERT INTO executions (job_id, attempt, ran_on, started_at, outcome)
    VALUES (p_id, p_attempt, p_ran_on, v_now, 'running')
    ON CONFLICT (job_id, attempt) DO UPDATE
      SET ran_on = excluded.ran_on, started_at = excluded.started_at, outcome = 'running', finished_at = NULL, error = NULL;
  END IF;

  RETURN QUERY SELECT 'claimed'::text, 0;
END
$$;
