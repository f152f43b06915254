-- A retry from the admin creates a new job; the original remembers it, so a bulk retry run twice
-- (or re-sent after a timeout) does not retry the same job again.
ALTER TABLE jobs ADD COLUMN retried_as uuid;
