-- The overview's rollup (issue 18): per minute, per job name, per side, how many jobs finished
-- completed and failed, and their queue waits (from due to first start) as a histogram, so the
-- overview's charts and wait percentiles read a few thousand rows however many jobs the ledger
-- holds. Written by a trigger as each job finishes (main's ledger only: 'rollup' in
-- ledger_settings, which main sets), counted into a row of (minute, name, side) in place.
--
-- shard: a transaction never waits for another's row: it counts into a row of its (minute, name,
-- side) that no other transaction holds (FOR UPDATE SKIP LOCKED), or adds one keyed by its own
-- backend's pid (and a counter), a key no other live transaction can be inserting. So finishing
-- jobs never queue behind each other on the rollup, and statements that finish jobs of several
-- names cannot deadlock on it; there are about as many rows per minute as transactions finished
-- jobs of one name at once. Readers sum them.
--
-- waits[i] counts waits up to wait_bucket_bounds()[i] ms (the 16th: anything longer).
CREATE TABLE job_minutes (
  minute     timestamptz NOT NULL,
  name       text NOT NULL,
  side       text NOT NULL CHECK (side IN ('main', 'fetcher')),
  shard      bigint NOT NULL DEFAULT 0,
  completed  integer NOT NULL DEFAULT 0,
  failed     integer NOT NULL DEFAULT 0,
  waits      integer[] NOT NULL DEFAULT array_fill(0, ARRAY[16]),
  PRIMARY KEY (minute, name, side, shard)
);

-- The upper bounds of the wait buckets, in ms (the 16th is open-ended).
CREATE FUNCTION wait_bucket_bounds() RETURNS integer[] LANGUAGE sql IMMUTABLE AS
$$ SELECT ARRAY[10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 900000, 3600000] $$;

CREATE FUNCTION job_minutes_count() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  v_bounds constant integer[] := wait_bucket_bounds();
  v_minute timestamptz;
  v_wait_ms double precision;
  v_bucket integer := 16;
  v_waits integer[] := array_fill(0, ARRAY[16]);
  v_row tid;
  v_try integer := 0;
BEGIN
  IF NOT coalesce((SELECT (value #>> '{}')::boolean FROM ledger_settings WHERE key = 'rollup'), false) THEN
    RETURN NULL;
  END IF;
  v_minute := date_trunc('minute', coalesce(NEW.finished_at, clock_timestamp()));
  v_wait_ms := greatest(0, extract(epoch FROM coalesce(NEW.started_at, NEW.finished_at) - NEW.run_at) * 1000);
  FOR i IN 1..15 LOOP
    IF v_wait_ms <= v_bounds[i] THEN
      v_bucket := i;
      EXIT;
    END IF;
  END LOOP;
  v_waits[v_bucket] := 1;
  LOOP
    -- a row of this minute that no other transaction holds (this one's own, if it has one)
    SELECT ctid INTO v_row FROM job_minutes
     WHERE minute = v_minute AND name = NEW.name AND side = NEW.route
     LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
      UPDATE job_minutes m
         SET completed = m.completed + (NEW.state = 'completed')::integer,
             failed = m.failed + (NEW.state = 'failed')::integer,
             waits[v_bucket] = m.waits[v_bucket] + 1
       WHERE m.ctid = v_row;
      RETURN NULL;
    END IF;
    -- none free: a row of its own, keyed by this backend (a key left by an earlier backend with
    -- the same pid is taken: the next one)
    INSERT INTO job_minutes (minute, name, side, shard, completed, failed, waits)
    VALUES (v_minute, NEW.name, NEW.route, pg_backend_pid()::bigint * 1000 + v_try,
            (NEW.state = 'completed')::integer, (NEW.state = 'failed')::integer, v_waits)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
      RETURN NULL;
    END IF;
    v_try := v_try + 1;
  END LOOP;
END $$;

CREATE TRIGGER job_minutes_count AFTER UPDATE OF state ON jobs
  FOR EACH ROW WHEN (NEW.state IN ('completed', 'failed') AND OLD.state IS DISTINCT FROM NEW.state)
  EXECUTE FUNCTION job_minutes_count();

-- The overview's "waiting and running now" counts every unfinished job by name and side: from an
-- index alone (an index-only scan: 24 ms for 333,000 unfinished jobs among 1,000,000, against
-- 112 ms reading the table). 003's jobs_live_by_name (name, state) gains the side; it also serves
-- a concurrency gate's count of its name's running jobs, so 001's jobs_active_by_name (name,
-- running jobs only) goes: one index fewer to write as jobs start. Partial: built from the
-- unfinished jobs only.
DROP INDEX jobs_live_by_name;
CREATE INDEX jobs_live_by_name ON jobs (name, state, route) WHERE state IN ('queued', 'forwarding', 'forwarded', 'active');
DROP INDEX jobs_active_by_name;
