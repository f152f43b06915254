-- A routed job's attempts on main, as main's own since 026: the fetcher's 'active' event no longer
-- writes a running execution row (the job's row says the attempt runs, and since when), and an
-- attempt that completes the job writes none either; failed and lost attempts keep their rows.
-- apply_job_event as in 022 otherwise.
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
    -- the attempt runs: the job's row says so (main's grant set its start; a job claimed before
    -- 026 has none, and takes the event's)
    UPDATE jobs SET events_applied = p_seq, updated_at = clock_timestamp(),
           state = 'active', attempts = greatest(attempts, p_attempt),
           started_at = coalesce(started_at, p_started_at, p_at),
           attempt_started_at = CASE WHEN p_attempt > attempts OR attempt_started_at IS NULL THEN coalesce(p_started_at, p_at) ELSE attempt_started_at END
     WHERE id = p_job;
  ELSIF p_type = 'progress' THEN
    UPDATE jobs SET events_applied = p_seq, updated_at = clock_timestamp(),
           progress = coalesce(p_progress, progress), progress_message = p_message
     WHERE id = p_job;
  ELSE
    -- completed, failed or lost: the attempt ends. Its row is written when it did not complete the
    -- job, when it has one (a release before 026 wrote it as it started), or when a later attempt
    -- holds the job (the job's row speaks for that one).
    IF p_type <> 'completed' OR p_attempt < v_attempts
       OR EXISTS (SELECT 1 FROM executions x WHERE x.job_id = p_job AND x.attempt = p_attempt) THEN
      INSERT INTO executions AS e (job_id, attempt, ran_on, started_at, outcome, finished_at, error, peak_rss_mb)
      VALUES (p_job, p_attempt, 'fetcher', coalesce(p_started_at, p_at), p_type, coalesce(p_finished_at, p_at), p_error, p_peak_rss_mb)
      ON CONFLICT (job_id, attempt) DO UPDATE
        SET outcome = excluded.outcome, finished_at = excluded.finished_at, error = excluded.error,
            peak_rss_mb = coalesce(excluded.peak_rss_mb, e.peak_rss_mb);
    END IF;
    UPDATE jobs SET events_applied = p_seq, updated_at = clock_timestamp(),
      state = CASE
        WHEN p_type = 'completed' THEN 'completed'
        WHEN p_state = 'failed' THEN 'failed'
        ELSE 'forwarded'              -- the fetcher retries it
      END,
      attempts = greatest(attempts, p_attempt),
      started_at = coalesce(started_at, p_started_at),
      attempt_started_at = CASE WHEN p_attempt > attempts OR attempt_started_at IS NULL THEN coalesce(p_started_at, p_at) ELSE attempt_started_at END,
      attempt_peak_rss_mb = CASE WHEN p_attempt >= attempts THEN coalesce(p_peak_rss_mb, attempt_peak_rss_mb) ELSE attempt_peak_rss_mb END,
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
