-- The overview's rollup (issue 18): per minute, per job name, per side, how many jobs finished
-- completed and failed, and their queue waits (from due to first start) as a histogram, so the
-- overview's charts and wait percentiles read a few thousand rows however many jobs the ledger
-- holds. Written by a trigger as each job finishes (main's ledger only: 'rollup' in
-- ledger_settings, which main sets), one row per (minute, name, side) updated in place.
--
-- waits[i] counts waits up to wait_bucket_ms(i) (the last bucket: anything longer).
CREATE TABLE job_minutes (
  minute     timestamptz NOT NULL,
  name       text NOT NULL,
  side       text NOT NULL CHECK (side IN ('main', 'fetcher')),
  completed  integer NOT NULL DEFAULT 0,
  failed     integer NOT NULL DEFAULT 0,
  waits      integer[] NOT NULL DEFAULT array_fill(0, ARRAY[16]),
  PRIMARY KEY (minute, name, side)
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
  v_wait_ms double precision;
  v_bucket integer := 16;
  v_waits integer[] := array_fill(0, ARRAY[16]);
BEGIN
  IF NOT coalesce((SELECT (value #>> '{}')::boolean FROM ledger_settings WHERE key = 'rollup'), false) THEN
    RETURN NULL;
  END IF;
  v_wait_ms := greatest(0, extract(epoch FROM coalesce(NEW.started_at, NEW.finished_at) - NEW.run_at) * 1000);
  FOR i IN 1..15 LOOP
    IF v_wait_ms <= v_bounds[i] THEN
      v_bucket := i;
      EXIT;
    END IF;
  END LOOP;
  v_waits[v_bucket] := 1;
  INSERT INTO job_minutes AS m (minute, name, side, completed, failed, waits)
  VALUES (date_trunc('minute', coalesce(NEW.finished_at, clock_timestamp())), NEW.name, NEW.route,
          (NEW.state = 'completed')::integer, (NEW.state = 'failed')::integer, v_waits)
  ON CONFLICT (minute, name, side) DO UPDATE
    SET completed = m.completed + excluded.completed,
        failed = m.failed + excluded.failed,
        waits[v_bucket] = m.waits[v_bucket] + 1;
  RETURN NULL;
END $$;

CREATE TRIGGER job_minutes_count AFTER UPDATE OF state ON jobs
  FOR EACH ROW WHEN (NEW.state IN ('completed', 'failed') AND OLD.state IS DISTINCT FROM NEW.state)
  EXECUTE FUNCTION job_minutes_count();
