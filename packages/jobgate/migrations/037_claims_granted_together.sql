-- Claims asked for together are granted together. claim_attempts (026) called claim_attempt per
-- claim: a PL/pgSQL call that reads the job's row, reads the pauses, marks earlier attempts lost and
-- updates the row, one statement at a time. A first attempt of a job main has not started
-- (`queued`, `forwarding`, `forwarded`) on the side it is routed to, with no pause on its name and
-- no gate (claim_attempts is never asked for gated jobs), has no earlier attempt to mark and no other
-- claim to wait for: those are granted by one UPDATE, with the pauses read once, after every row is
-- locked. Every other claim (a retry, a job another attempt holds, a paused or finished one, one
-- claimed twice in the call, the previous release's claims that write their running rows) goes
-- through claim_attempt one by one, as before. The jobs' rows are locked first, all of them, in id
-- order, as claim_attempt took them one by one: two calls never wait on each other.
CREATE OR REPLACE FUNCTION claim_attempts(p_claims jsonb)
RETURNS TABLE (n integer, outcome text, wait_ms integer)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  c         record;
  v_now     timestamptz;
  v_paused  text[];
  v_granted integer[];
BEGIN
  PERFORM 1 FROM jobs j WHERE j.id IN (SELECT x.id FROM jsonb_to_recordset(p_claims) AS x(id uuid)) ORDER BY j.id FOR UPDATE;
  -- (read after the locks, as claim_attempt reads them: a pause holds from its commit on)
  v_paused := ARRAY(SELECT p.name FROM pauses p WHERE p.expires_at IS NULL OR p.expires_at > clock_timestamp());
  v_now := clock_timestamp();
  WITH asked AS (
    SELECT x.*, count(*) OVER (PARTITION BY x.id) AS times
      FROM jsonb_to_recordset(p_claims) AS x(n integer, id uuid, attempt integer, ran_on text, claim_seconds integer, running_row boolean)
  ), granted AS (
    UPDATE jobs j SET state = 'active', attempts = greatest(j.attempts, 1), claimed_by = a.ran_on,
           claim_expires_at = v_now + a.claim_seconds * interval '1 second',
           started_at = coalesce(j.started_at, v_now), attempt_started_at = v_now, attempt_peak_rss_mb = NULL,
           updated_at = v_now
      FROM asked a
     WHERE j.id = a.id AND a.times = 1 AND a.attempt = 1 AND a.running_row IS FALSE
       AND j.state IN ('queued', 'forwarding', 'forwarded') AND j.route = a.ran_on
       AND NOT (j.name = ANY (v_paused) OR '*' = ANY (v_paused))
    RETURNING a.n
  )
  SELECT coalesce(array_agg(granted.n), '{}') INTO v_granted FROM granted;

  RETURN QUERY SELECT g.n, 'claimed'::text, 0 FROM unnest(v_granted) AS g(n);
  FOR c IN
    SELECT * FROM jsonb_to_recordset(p_claims) AS x(n integer, id uuid, attempt integer, ran_on text, claim_seconds integer, running_row boolean)
     WHERE NOT (x.n = ANY (v_granted))
     ORDER BY x.id, x.n
  LOOP
    RETURN QUERY SELECT c.n, r.outcome, r.wait_ms FROM claim_attempt(c.id, c.attempt, c.ran_on, NULL, NULL, c.claim_seconds, coalesce(c.running_row, true)) r;
  END LOOP;
END
$$;

-- A batch member counts in its batch's pending jobs until it ends: the trigger that keeps that
-- count (018) fires only when a member enters or leaves an end state, not at each step between
-- (delivered, claimed), where it was a PL/pgSQL call that changed nothing.
DROP TRIGGER batch_members ON jobs;
CREATE TRIGGER batch_members AFTER UPDATE OF state ON jobs
  FOR EACH ROW WHEN (NEW.batch_id IS NOT NULL
                     AND (OLD.state IN ('completed', 'failed', 'cancelled')) <> (NEW.state IN ('completed', 'failed', 'cancelled')))
  EXECUTE FUNCTION batch_member_changed();
