-- The ledger is main's outbox (issue 17). A job routed to the fetcher is one row here: the forwarder
-- takes batches of such rows itself (FOR UPDATE SKIP LOCKED, one UPDATE), woken by NOTIFY, instead
-- of a pg-boss job per routed job in the jobgate.outbox queue.
--
-- forward_after: when the forwarder may take the job (again): a lease while a delivery is under
-- way (renewed while it lasts, so the job of a main that died mid-delivery goes out again once it
-- lapses), the backoff after a failed one. forward_tries: failed deliveries so far (the backoff
-- doubles with each). request_id: the enqueueing request's id, which goes to the fetcher with the
-- job (the outbox's pg-boss job carried it before).
--
-- Upgrading in place: jobs already waiting ('queued' or 'forwarding', forward_after NULL) are
-- taken by the new forwarder at once. Their copies in pg-boss's jobgate.outbox queue are no longer
-- read; an older main still running during a rolling deploy delivers them as before (the fetcher
-- takes each job once, by id), and pg-boss's retention removes what is left.
ALTER TABLE jobs ADD COLUMN forward_after timestamptz;
ALTER TABLE jobs ADD COLUMN forward_tries integer NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN request_id text;

-- What the forwarder takes next: highest priority first, then oldest (as pg-boss handed them out).
CREATE INDEX jobs_to_forward ON jobs (priority DESC, created_at) WHERE route = 'fetcher' AND state IN ('queued', 'forwarding');
