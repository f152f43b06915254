-- Main's side of the job events: the fetcher's report of each attempt, applied to main's ledger
-- idempotently and in per-job order (events_applied is the last sequence number taken).
ALTER TABLE jobs ADD COLUMN events_applied integer NOT NULL DEFAULT 0;

-- Applies one event; returns false when it was already applied (or older than what was).
CREATE FUNCTION apply_job_event(p_job uuid, p_seq integer, p_type text, p_attempt integer, p_at timestamptz,
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
      error = coalesce(p_error, error),
      progress = CASE WHEN p_type = 'completed' THEN 100 ELSE progress END,
      finished_at = CASE WHEN p_type = 'completed' OR p_state = 'failed' THEN coalesce(p_finished_at, p_at) ELSE NULL END
     WHERE id = p_job;
  END IF;
  RETURN true;
END
$$;
