-- The fetcher's events arrive in batches of up to 500: apply a batch in one call (one round trip
-- instead of one per event), each event through apply_job_event, in per-job order.
CREATE FUNCTION apply_job_events(p_events jsonb)
RETURNS integer
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  e         record;
  v_applied integer := 0;
BEGIN
  FOR e IN
    SELECT * FROM jsonb_to_recordset(p_events) AS x(
      job uuid, seq integer, type text, attempt integer, at timestamptz, state text,
      started_at timestamptz, finished_at timestamptz, progress integer, message text,
      error jsonb, peak_rss_mb integer)
    ORDER BY job, seq
  LOOP
    IF apply_job_event(e.job, e.seq, e.type, e.attempt, e.at, e.state, e.started_at, e.finished_at,
                       e.progress, e.message, e.error, e.peak_rss_mb) THEN
      v_applied := v_applied + 1;
    END IF;
  END LOOP;
  RETURN v_applied;
END
$$;
