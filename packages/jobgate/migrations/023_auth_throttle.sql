-- The wrong-credentials throttle, made atomic: one row per client address, holding the times of
-- its failures in the window (never more than the per-address budget). A wrong password or token
-- is counted by one upsert that adds it only while the row has room; the row lock makes
-- simultaneous failures from one address take turns (on every main instance), so a thousand
-- guesses at once get the budget answered, not hundreds. A right credential only reads the row.
-- The ceiling for all addresses sums these rows: one address can add no more than its budget.
--
-- auth_failures (014) is no longer written; an older main still running during a rolling deploy
-- keeps its own count there until it stops. A later migration may drop it.
CREATE TABLE auth_throttle (
  address   text PRIMARY KEY,
  failures  timestamptz[] NOT NULL
);
