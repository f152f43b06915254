-- Schedules fire on time (jobgate's own scheduler instead of pg-boss's timekeeper): every main
-- sleeps until the next occurrence of any schedule and then records the firing keyed by
-- (schedule, occurrence), `firing` being the occurrence's ISO time, in the transaction that
-- enqueues its job; a second main finds it there (ON CONFLICT DO NOTHING) and enqueues nothing.
-- due_at: the occurrence a firing was for (null for a run-now and for firings pg-boss sent).
ALTER TABLE schedule_runs ADD COLUMN due_at timestamptz;
