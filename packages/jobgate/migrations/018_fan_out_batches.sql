-- Fan-out and batches (issue 18).
--
-- parent_id: the job whose handler enqueued this one (ctx.performLater). A child's id is derived
-- from its parent's id and its key, so a retried parent that enqueues the same children again
-- writes nothing new (the insert finds the ids taken). No foreign key: the parent may be pruned
-- first.
-- batch_id: the batch this job belongs to.
ALTER TABLE jobs ADD COLUMN parent_id uuid;
ALTER TABLE jobs ADD COLUMN batch_id uuid;
CREATE INDEX jobs_by_batch ON jobs (batch_id, state) WHERE batch_id IS NOT NULL;

-- A batch: jobs counted as one, with jobs to enqueue when the last of them ends.
--   pending     members not finished yet (counted in as they are written, out by the
--               batch_member_changed trigger as they end);
--   sealed      every member has been added (a batch filled over several requests finishes only
--               then; one written in a single transaction is sealed in it);
--   callbacks   what to enqueue when it finishes: [{on: finish|success|failure, name, payload}];
--   dispatch_due  finished, and its callbacks not enqueued yet: the dispatcher enqueues them and
--               clears it in one transaction, so they are enqueued once per finish, whichever
--               process does it and whatever crashed in between;
--   dispatched  the callback jobs of the last finish: [{on, jobId}];
--   counts      the members by state when it last finished (what the callbacks were given).
CREATE TABLE batches (
  id            uuid PRIMARY KEY,
  parent_id     uuid,
  properties    jsonb NOT NULL DEFAULT '{}',
  callbacks     jsonb NOT NULL DEFAULT '[]',
  pending       integer NOT NULL DEFAULT 0,
  sealed        boolean NOT NULL DEFAULT false,
  state         text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'finished')),
  dispatch_due  boolean NOT NULL DEFAULT false,
  dispatched    jsonb NOT NULL DEFAULT '[]',
  counts        jsonb,
  created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
  finished_at   timestamptz
);
CREATE INDEX batches_due ON batches (finished_at) WHERE dispatch_due;
CREATE INDEX batches_by_parent ON batches (parent_id) WHERE parent_id IS NOT NULL;

-- A batch that has every member and none pending is finished, and its callbacks are due; one that
-- gains a pending member (an admin's retry of a failed one) runs again.
CREATE FUNCTION batch_settle(p_id uuid, p_delta integer) RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  UPDATE batches b
     SET pending = b.pending + p_delta,
         state = CASE WHEN b.sealed AND b.pending + p_delta = 0 THEN 'finished' ELSE 'running' END,
         finished_at = CASE WHEN b.sealed AND b.pending + p_delta = 0 THEN clock_timestamp() END,
         dispatch_due = b.dispatch_due OR (b.sealed AND b.pending + p_delta = 0)
   WHERE b.id = p_id;
END $$;

-- A member that ends (or, retried, runs again) changes its batch's pending count. Members are
-- counted in when they are written (their insert, enqueue/perform-later.ts spawn(): one
-- batch_settle per batch, not one per member).
CREATE FUNCTION batch_member_changed() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  v_delta integer := 0;
BEGIN
  IF NEW.state NOT IN ('completed', 'failed', 'cancelled') THEN v_delta := 1; END IF;
  IF OLD.state NOT IN ('completed', 'failed', 'cancelled') THEN v_delta := v_delta - 1; END IF;
  IF v_delta <> 0 THEN PERFORM batch_settle(NEW.batch_id, v_delta); END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER batch_members AFTER UPDATE OF state ON jobs
  FOR EACH ROW WHEN (NEW.batch_id IS NOT NULL) EXECUTE FUNCTION batch_member_changed();

-- Every member is in: the batch may finish (at once, when none is pending). Once per batch.
CREATE FUNCTION batch_seal(p_id uuid) RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  UPDATE batches SET sealed = true WHERE id = p_id AND NOT sealed;
  IF FOUND THEN PERFORM batch_settle(p_id, 0); END IF;
END $$;
