-- The fetcher keeps no ledger row for a job without a gate (store/fetcher-records.ts): its pg-boss
-- row is its record there. The attempts of such a job that failed or were lost keep their rows in
-- `executions`, as main's records' do (migration 028), so the fetcher's read of a job shows its
-- history; their events are written by the runner itself, numbered by attempt. The executions
-- trigger would send them again through emit_job_event, which numbers a job's events by the
-- counter on its ledger row: a job without a ledger row sends nothing from here.
CREATE OR REPLACE FUNCTION emit_job_event(p_job uuid, p_type text, p_attempt integer, p_data jsonb)
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
  IF NOT FOUND THEN
    RETURN;
  END IF;
  INSERT INTO job_events (job_id, job_seq, type, attempt, data) VALUES (p_job, v_seq, p_type, p_attempt, p_data);
END
$$;
