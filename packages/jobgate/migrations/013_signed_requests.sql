-- Signed, state-changing requests accepted inside the signature window (issue 15): each webhook-id
-- with a hash of its body and the answer it got. A replay inside the window (the same id) gets the
-- stored answer and changes nothing; the same id with another body is refused. An honest retry
-- after a lost answer (Standard Webhooks keeps the id across retries) learns the outcome. Kept in
-- PostgreSQL so every instance of an app shares it; a row is worthless once its timestamp has left
-- the window, and is pruned after that.
CREATE TABLE signed_requests (
  webhook_id  text PRIMARY KEY,
  body_hash   bytea NOT NULL,
  status      integer,              -- null while the first delivery is being handled
  answer      jsonb,                -- {type, body}: the response as it was sent
  expires_at  timestamptz NOT NULL
);
CREATE INDEX signed_requests_expiry ON signed_requests (expires_at);
