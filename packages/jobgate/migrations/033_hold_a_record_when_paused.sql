-- A job recorded by its pg-boss row is written held (pg-boss's `blocked`) while its name is
-- paused, in the statement that reads it back at enqueue (store/queue-records.ts). An UPDATE of
-- pg-boss's table in that round trip cost a third of an enqueue even when it changed nothing (no
-- name is paused nearly always); this function runs only where the read-back finds the name paused:
--   SELECT …, CASE WHEN pause_of(j.name) IS NOT NULL THEN hold_record('<boss schema>', j.name, j.id) END …
-- It answers whether it held the job.
CREATE OR REPLACE FUNCTION hold_record(p_boss_schema text, p_name text, p_id uuid)
RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  v_n integer;
BEGIN
  EXECUTE format('UPDATE %I.job SET blocked = true WHERE name = $1 AND id = $2 AND state IN (''created'', ''retry'') AND NOT blocked', p_boss_schema)
    USING p_name, p_id;
  GET DIAGNOSTICS v_n = ROW_COUNT;
  RETURN v_n > 0;
END;
$$;
