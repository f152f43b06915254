-- A job whose record is its pg-boss row (a job main runs that needs no decision from main: no
-- ledger row) keeps the rows of its attempts that failed, were lost or were cancelled in
-- `executions` like any other job, so `executions` no longer refers to `jobs`. What the foreign
-- key's cascade did stays: a statement that deletes jobs deletes their attempts' rows with them.
ALTER TABLE executions DROP CONSTRAINT executions_job_id_fkey;

CREATE FUNCTION jobs_deleted() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  DELETE FROM executions WHERE job_id IN (SELECT id FROM gone);
  RETURN NULL;
END
$$;

CREATE TRIGGER jobs_deleted AFTER DELETE ON jobs REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION jobs_deleted();

-- Such a job is in main's queues with no ledger row. A main of the previous release (a rolling
-- deploy, a rollback) that fetches one claims it in the ledger before it runs it, and would skip a
-- job the ledger does not know as finished. Main's claim of a job without a ledger row is granted
-- instead: no job of main's loses its row while its queue entry waits (a delete drops the entry in
-- the same transaction), so the only such jobs are these. The fetcher's claims at main are not.
ALTER FUNCTION claim_attempt(uuid, integer, text, integer, integer, integer, boolean) RENAME TO claim_ledger_attempt;

CREATE FUNCTION claim_attempt(p_id uuid, p_attempt integer, p_ran_on text, p_concurrency integer, p_per_second integer, p_claim_seconds integer, p_running_row boolean)
RETURNS TABLE(outcome text, wait_ms integer)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  IF p_ran_on = 'main' AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = p_id) THEN
    RETURN QUERY SELECT 'claimed'::text, 0;
    RETURN;
  END IF;
  RETURN QUERY SELECT * FROM claim_ledger_attempt(p_id, p_attempt, p_ran_on, p_concurrency, p_per_second, p_claim_seconds, p_running_row);
END
$$;
