-- The fetcher's ledger keeps only the indexes its own reads use. Both ledgers are made by the same
-- migrations, so the fetcher's carried every index main's lists and outbox read: the payload's GIN,
-- the list orders by creation, name, route and state, and the forwarder's two outbox indexes. Every
-- row the fetcher writes (a job accepted, its claim, its end: each a new row version, since `state`
-- is indexed) wrote an entry into each of them, none of which the fetcher reads.
--
-- What the fetcher reads (store/ledger.ts, store/fetcher-ledger.ts): a job by id (the primary key),
-- its live jobs by name and state for a concurrency gate and its status (jobs_live_by_name), the
-- day's failures (jobs_failed_recent), finished jobs for retention (jobs_finished). Those stay, as
-- do jobs_unique_live and jobs_by_batch, which are partial on columns the fetcher never sets.
--
-- Applied only where the schema is migrated as the fetcher's (createFetcher sets jobgate.side for
-- its migrations: store/migrate.ts); main's schema, the CLI's `migrate` and schema.sql keep every
-- index. A later migration that changes one of these indexes must say IF EXISTS.
DO $$
BEGIN
  IF current_setting('jobgate.side', true) = 'fetcher' THEN
    DROP INDEX IF EXISTS jobs_payload, jobs_by_created, jobs_by_name, jobs_by_route, jobs_by_state, jobs_to_forward, jobs_undelivered;
  END IF;
END $$;
