-- Admin sessions end when ADMIN_PASSWORD changes: each is bound to a hash of the password it was
-- opened with (sessions from before this migration have none, and end).
ALTER TABLE admin_sessions ADD COLUMN password_hash text;

-- Wrong passwords and tokens, by client address, shared by every main instance, so rotating
-- addresses or running three mains does not multiply the budget; pruned as they age.
CREATE TABLE auth_failures (
  id       bigserial PRIMARY KEY,
  address  text NOT NULL,
  at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX auth_failures_at ON auth_failures (at);
CREATE INDEX auth_failures_address ON auth_failures (address, at);
