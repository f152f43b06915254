-- Wake-ups of the fetcher in flight, one row per main process waking it (issue 14). The state the
-- admin sees is what the last probe found (awake, asleep, down); that main is waking the fetcher is
-- shown beside it. It lives here, not in process memory, because the process that wakes (the
-- forwarder in a worker) is often not the one asked (a web process, `jobgate status`).
-- A row outlives a crashed waker only until `until`, the wake-up's own deadline.
CREATE TABLE fetcher_wakes (
  waker  text PRIMARY KEY,             -- one per main process
  since  timestamptz NOT NULL,
  until  timestamptz NOT NULL
);
