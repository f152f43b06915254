-- Live jobs by name, for status counts that stay cheap however many finished jobs the ledger holds.
CREATE INDEX jobs_live_by_name ON jobs (name, state) WHERE state IN ('queued', 'forwarding', 'forwarded', 'active');
CREATE INDEX jobs_failed_recent ON jobs (finished_at) WHERE state = 'failed';
