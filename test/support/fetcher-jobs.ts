// Every job the fetcher knows, for tests to read as one relation: the fetcher ledger's rows and the
// jobs recorded by their pg-boss row (packages/jobgate/src/store/queue-records.ts), with the
// ledger's columns. No view as for main (main-jobs.ts): the fetcher's schemas only exist once a
// fetcher has started, so none can be made in the test databases' template; read it as a subquery.
import { JOB_COLUMNS, recordColumnsOf } from '../../packages/jobgate/src/store/index.ts';

/** Every job the fetcher knows, as a query (the ledger's columns). */
export const fetcherJobsSql = (schema = 'jobgate_fetcher', bossSchema = 'pgboss_fetcher') => `
  SELECT ${JOB_COLUMNS} FROM ${schema}.jobs
  UNION ALL
  SELECT ${recordColumnsOf('fetcher')} FROM ${bossSchema}.job j WHERE j.data ? 'record' AND j.name NOT LIKE 'jobgate.%'`;

/** The same, aliased `fetcher_jobs`, for a FROM clause: `FROM ${FETCHER_JOBS} WHERE …`. */
export const FETCHER_JOBS = `(${fetcherJobsSql()}) fetcher_jobs`;
