// Every job main knows, for tests and the bench to read as one relation: the ledger's rows and the
// jobs recorded by their pg-boss row (packages/jobgate/src/store/queue-records.ts), with the
// ledger's columns (and request_id), and every attempt of them. The product reads them through its
// own queries (merged per job queue, each from its index); these are for assertions.
import { JOB_COLUMNS, RECORD_COLUMNS, recordAttemptsSql } from '../../packages/jobgate/src/store/index.ts';

/** Every job main knows, as a query (the ledger's columns and request_id). */
export const mainJobsSql = (schema = 'jobgate', bossSchema = 'pgboss_main') => `
  SELECT ${JOB_COLUMNS}, request_id FROM ${schema}.jobs
  UNION ALL
  SELECT ${RECORD_COLUMNS}, j.data->>'requestId' FROM ${bossSchema}.job j WHERE j.data ? 'record'`;

/** Every attempt of them, as a query (the columns of the view `attempts`). */
export const mainAttemptsSql = (schema = 'jobgate', bossSchema = 'pgboss_main') => `
  SELECT * FROM ${schema}.attempts
  UNION ALL
  ${recordAttemptsSql(bossSchema)}`;

/**
 * Views `public.main_jobs` and `public.main_attempts` of the two queries, made in the test
 * databases' template (and the bench's database) once both schemas exist.
 */
export function mainJobsViews(schema = 'jobgate', bossSchema = 'pgboss_main'): string {
  return `
    CREATE OR REPLACE VIEW public.main_jobs AS ${mainJobsSql(schema, bossSchema)};
    CREATE OR REPLACE VIEW public.main_attempts AS ${mainAttemptsSql(schema, bossSchema)};`;
}
