-- A job's W3C traceparent: the enqueueing request's span (or a new trace), carried to the fetcher
-- and onto its events, so both services' logs of one job share a traceId.
ALTER TABLE jobs ADD COLUMN traceparent text;
