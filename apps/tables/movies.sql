-- The reference apps' own table: where the shipped movies.fetch job upserts what it pages out of a
-- movie provider. Each app applies this at boot in its JOBGATE_SCHEMA (main: jobgate, the fetcher:
-- jobgate_fetcher; main needs it too, for fetcher jobs it runs under the emergency override).
-- Idempotent: a table already there (one made by jobgate's migrations before 0.1.0) is left as it is.
CREATE TABLE IF NOT EXISTS movies (
  provider     text NOT NULL,
  external_id  text NOT NULL,
  title        text NOT NULL,
  released_on  date,
  popularity   double precision,
  fetched_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (provider, external_id)
);
