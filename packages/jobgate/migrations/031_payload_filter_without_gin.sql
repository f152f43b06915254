-- The jobs list's payload filter reads in creation order, as it already does for the jobs whose
-- record is their pg-boss row (store/queue-records.ts), instead of from a GIN index over every
-- payload. The GIN index was written with every row version of every job (state is indexed, so
-- each state change is a new version with an entry in each index), a payload's paths each time,
-- for a filter an operator uses now and then. Without it a filter within one job name reads that
-- name's jobs newest first (jobs_by_name) until a page is full; across every name, all jobs newest
-- first (jobs_by_created). Measured at 1,000,000 jobs in test/db/jobs-list-scale.test.ts and the
-- bench's backlog section (docs/storage-design.md, Reads).
DROP INDEX IF EXISTS jobs_payload;
