-- The emergency override, and who may run a job (issue 5).
--
-- jobs.route is the job's owner: the side allowed to claim its attempts. A fetcher job starts
-- with route 'fetcher'; while the override is on, main takes over the ones the fetcher has not
-- claimed (route becomes 'main', route_reason says why). The fetcher claims each attempt in
-- main's ledger over the signed API before it runs it, so the two sides never run one job at once.

ALTER TABLE jobs ADD COLUMN route_reason text NOT NULL DEFAULT 'definition'
  CHECK (route_reason IN ('definition', 'override', 'run-on-main'));

-- Jobs waiting for delivery, oldest first (the override takes them over in this order).
CREATE INDEX jobs_undelivered ON jobs (created_at) WHERE route = 'fetcher' AND state IN ('queued', 'forwarding');

-- One row: the override as it is now. Changed only together with an audit row.
CREATE TABLE override_state (
  singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  enabled     boolean NOT NULL DEFAULT false,
  reason      text,
  changed_by  text,
  since       timestamptz,
  expires_at  timestamptz
);
INSERT INTO override_state (singleton) VALUES (true);

CREATE TABLE override_audit (
  id         bigserial PRIMARY KEY,
  at         timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor      text NOT NULL,
  action     text NOT NULL CHECK (action IN ('on', 'off', 'expired')),
  reason     text,
  old_value  jsonb NOT NULL,
  new_value  jsonb NOT NULL
);

-- claim_attempt, third version: only the job's owner (jobs.route) may claim it, and a live claim
-- is the runner's (side and attempt) until it ends or lapses.
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

-- apply_job_event, third version: a job main took over is main's; late events from the fetcher
-- about it are counted but change nothing.
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
  UPDATE jobs SET events_applied = p_seq, updated_at = clock_timestamp() WHERE id = p_job;
  -- a job finished, cancelled or taken over here stays so; its events are still counted as applied
  IF v_state IN ('completed', 'failed', 'cancelled') OR v_route <> 'fetcher' THEN
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
