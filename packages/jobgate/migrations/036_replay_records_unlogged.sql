-- Replay records (signed_requests: each signed request main and the fetcher accept, kept for its
-- signature window) are written without WAL. They were a tenth of a routed job's WAL (a claim, a
-- batch of events and a submission each write one and update it with the answer), and each
-- request's first write waited for its own WAL flush, on the path of every claim. An unlogged
-- table keeps its rows across clean restarts; after a crash of PostgreSQL (or on a promoted
-- standby) it starts empty, so a request captured in the last five minutes could be accepted once
-- more: every route that records them acts once by its own key anyway (a job's id at intake, an
-- event's number, an attempt's claim, a child's key), which is why this is safe.
ALTER TABLE signed_requests SET UNLOGGED;
