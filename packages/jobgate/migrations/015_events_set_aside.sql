-- A job event main refuses (a 4xx for that one event) is set aside, not retried in a loop and not
-- dropped (issue 15): kept with the reason, visible in the fetcher's status and its metrics, sent
-- again when asked (POST /v1/events/resend, from main's admin), while every other event flows on.
ALTER TABLE job_events ADD COLUMN set_aside_at timestamptz;
ALTER TABLE job_events ADD COLUMN set_aside_reason text;
CREATE INDEX job_events_set_aside ON job_events (seq) WHERE set_aside_at IS NOT NULL;
