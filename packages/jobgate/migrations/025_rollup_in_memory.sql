-- The overview's rollup (job_minutes, 021) is counted in memory by each main process as its
-- statements finish jobs, and written once a second as one upsert per minute, job name and side,
-- into rows of the process's own shard (store/rollup.ts): a fraction of a row per job, where the
-- trigger wrote a row as each job finished. The trigger goes.
DROP TRIGGER job_minutes_count ON jobs;
DROP FUNCTION job_minutes_count();
DELETE FROM ledger_settings WHERE key = 'rollup';

-- apply_job_events, answering also which jobs its events finished (completed, or failed for good),
-- with what the rollup counts of each. apply_job_events stays as it is for a main of the previous
-- release during a rolling deploy.
CREATE FUNCTION apply_job_events_finishing(p_events jsonb, OUT applied integer, OUT finished jsonb)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  e        record;
  v_was    text;
  v_job    record;
  v_ended  jsonb[] := '{}';
BEGIN
  applied := 0;
  FOR e IN
    SELECT * FROM jsonb_to_recordset(p_events) AS x(
      job uuid, seq integer, type text, attempt integer, at timestamptz, state text,
      started_at timestamptz, finished_at timestamptz, progress integer, message text,
      error jsonb, peak_rss_mb integer)
    ORDER BY job, seq
  LOOP
    v_was := NULL;
    IF e.type IN ('completed', 'failed', 'lost') THEN
      -- the lock apply_job_event takes, taken first: the state read is the one it changes
      SELECT state INTO v_was FROM jobs WHERE id = e.job FOR UPDATE;
    END IF;
    IF apply_job_event(e.job, e.seq, e.type, e.attempt, e.at, e.state, e.started_at, e.finished_at,
                       e.progress, e.message, e.error, e.peak_rss_mb) THEN
      applied := applied + 1;
      IF v_was NOT IN ('completed', 'failed', 'cancelled') THEN
        SELECT name, route, state, run_at, started_at, finished_at INTO v_job FROM jobs WHERE id = e.job;
        IF v_job.state IN ('completed', 'failed') THEN
          v_ended := v_ended || jsonb_build_object('name', v_job.name, 'route', v_job.route, 'state', v_job.state,
            'run_at', v_job.run_at, 'started_at', v_job.started_at, 'finished_at', v_job.finished_at);
        END IF;
      END IF;
    END IF;
  END LOOP;
  finished := to_jsonb(v_ended);
END
$$;
