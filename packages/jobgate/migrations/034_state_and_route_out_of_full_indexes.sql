-- The jobs list's state and route filters read from indexes a job's usual path never writes. A
-- state change of a ledger row (a routed job on main is delivered, granted and ended: three) is
-- a new row version with an entry in every index whose predicate it meets, and jobs_by_state and
-- jobs_by_route, over every row, took one each time: about a kilobyte of WAL per routed job
-- (`npm run bench -- --only routed --profile-sql`, WAL by relation).
--
-- What answers the filters instead (test/db/jobs-list-scale.test.ts, at 1,000,000 jobs):
--   a live state      jobs_live_by_name (partial: the live rows), or newest first where it is common
--   failed, cancelled jobs_failed_or_cancelled below: written only when a job ends that way
--   completed         newest first (jobs_by_created), or jobs_finished where it is rare
--   route = 'main'    jobs_on_main below: main's own ledger rows (gated, unique, batched, children)
--   route = 'fetcher' newest first: routed jobs are most of main's ledger
-- Main's side only: the fetcher's ledger has neither index since migration 030.
DROP INDEX IF EXISTS jobs_by_state, jobs_by_route;
DO $$
BEGIN
  IF current_setting('jobgate.side', true) IS DISTINCT FROM 'fetcher' THEN
    CREATE INDEX IF NOT EXISTS jobs_failed_or_cancelled ON jobs (state, created_at DESC, id DESC) WHERE state IN ('failed', 'cancelled');
    CREATE INDEX IF NOT EXISTS jobs_on_main ON jobs (created_at DESC, id DESC) WHERE route = 'main';
  END IF;
END $$;
