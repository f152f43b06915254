-- A pause is in force when its call returns: a job of a paused name never starts an attempt, and
-- never shows one. Three places read the pauses table at the moment they act, so none depends on
-- when a process last read it: main's forwarder (a paused name's routed jobs stay in the outbox),
-- the override's takeover (they stay there too), and claim_attempt, whose answer for a paused job
-- is now 'paused' (not 'wait'): the runner gives the fetched job back to its queue unstarted,
-- instead of waiting inside the queue's active job until it expires and spends a retry.

-- The pause that holds jobs named `p_name` (that name's own, else '*'), or null: the one test of
-- "in force" every reader uses.
CREATE FUNCTION pause_of(p_name text) RETURNS text
LANGUAGE sql
SET search_path FROM CURRENT
AS $$
  SELECT p.name FROM pauses p
   WHERE p.name IN (p_name, '*') AND (p.expires_at IS NULL OR p.expires_at > clock_timestamp())
   ORDER BY p.name = '*' LIMIT 1
$$;

-- claim_attempt as in 019, answering 'paused' for a paused job (no attempt starts, none is used up).
CREATE OR REPLACE FUNCTION claim_attempt(p_id uuid, p_attempt integer, p_ran_on text, p_concurrency integer,
                              p_per_second integer, p_claim_seconds integer)
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
BEGIN
  -- the job's row lock serializes claims of one job (always taken before a gate lock)
  SELECT j.name, j.state, j.route, j.attempts, j.claim_expires_at, j.claimed_by
    INTO v_name, v_state, v_route, v_attempts, v_expires, v_by
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

-- apply_job_event as in 016, but an attempt main has not granted (its claim here never went
-- through: the job is paused, or another attempt holds it) does not show as running on the
-- fetcher's 'active' event. The fetcher claims in its own ledger and at main at once, and its
-- 'active' event can leave before main's answer; main's grant writes the running execution itself.
CREATE OR REPLACE FUNCTION apply_job_event(p_job uuid, p_seq integer, p_type text, p_attempt integer, p_at timestamptz,
                                p_state text, p_started_at timestamptz, p_finished_at timestamptz,
                                p_progress integer, p_message text, p_error jsonb, p_peak_rss_mb integer)
RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  v_applied  integer;
  v_state    text;
  v_route    text;
  v_attempts integer;
BEGIN
  SELECT events_applied, state, route, attempts INTO v_applied, v_state, v_route, v_attempts FROM jobs WHERE id = p_job FOR UPDATE;
  IF NOT FOUND OR p_seq <= v_applied THEN
    RETURN false;
  END IF;
  -- a job finished, cancelled or taken over here stays so; its events are still counted as applied
  IF v_state IN ('completed', 'failed', 'cancelled') OR v_route <> 'fetcher' THEN
    UPDATE jobs SET events_applied = p_seq, updated_at = clock_timestamp() WHERE id = p_job;
    RETURN true;
  END IF;

  IF p_type = 'active' AND v_attempts < p_attempt THEN
    -- not granted here (yet): counted, not shown
    UPDATE jobs SET events_applied = p_seq WHERE id = p_job;
  ELSIF p_type = 'active' THEN
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
