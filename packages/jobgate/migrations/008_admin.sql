-- The admin dashboard (issue 6): login sessions, an audit log of every state change made from it
-- (the override keeps its own, richer log), and a payload index for filtering jobs by a field.

CREATE TABLE admin_sessions (
  id_hash     text PRIMARY KEY,            -- sha256 of the cookie's value: a leaked table opens nothing
  csrf_token  text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  expires_at  timestamptz NOT NULL
);
CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);

CREATE TABLE admin_audit (
  id      bigserial PRIMARY KEY,
  at      timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor   text NOT NULL,
  action  text NOT NULL,
  target  text,
  detail  jsonb NOT NULL DEFAULT '{}'
);

-- `payload @> '{"barcode": "737628064502"}'`: the jobs list's payload filter.
CREATE INDEX jobs_payload ON jobs USING gin (payload jsonb_path_ops);

-- The list's filters combine (state and name, say): tell the planner how the columns go together,
-- so a combination that matches nothing is read from the state or name index, not found by
-- walking every job newest first (measured: 263 ms → see test/jobs-list-scale.test.ts).
CREATE STATISTICS jobs_filter_columns (mcv, dependencies) ON state, name, route FROM jobs;
