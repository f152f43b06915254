-- Where the shipped movies.fetch job upserts what it pages out of a movie provider.
CREATE TABLE movies (
  provider     text NOT NULL,
  external_id  text NOT NULL,
  title        text NOT NULL,
  released_on  date,
  popularity   double precision,
  fetched_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (provider, external_id)
);
