-- GENERATED FILE: do not edit. Regenerate with `npm run schema` (scripts/dump-schema.ts).
-- jobgate's schema (`jobgate`) after every migration in packages/jobgate/migrations/, up to
-- 037_claims_granted_together.sql: what is, not how it came to be. Change the schema with a new
-- migration, never here; test/db/schema.test.ts fails while this file is out of date.

SET check_function_bodies = false;

CREATE SEQUENCE jobgate.admin_audit_id_seq AS bigint
    START WITH 1 INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 CACHE 1;

CREATE SEQUENCE jobgate.auth_failures_id_seq AS bigint
    START WITH 1 INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 CACHE 1;

CREATE SEQUENCE jobgate.job_events_seq_seq AS bigint
    START WITH 1 INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 CACHE 1;

CREATE SEQUENCE jobgate.override_audit_id_seq AS bigint
    START WITH 1 INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 CACHE 1;

CREATE TABLE jobgate.admin_audit (
    id bigint DEFAULT nextval('jobgate.admin_audit_id_seq'::regclass) NOT NULL,
    at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    target text,
    detail jsonb DEFAULT '{}'::jsonb NOT NULL,
    CONSTRAINT admin_audit_pkey PRIMARY KEY (id)
);

CREATE TABLE jobgate.admin_sessions (
    id_hash text NOT NULL,
    csrf_token text NOT NULL,
    created_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    password_hash text,
    CONSTRAINT admin_sessions_pkey PRIMARY KEY (id_hash)
);

CREATE TABLE jobgate.auth_failures (
    id bigint DEFAULT nextval('jobgate.auth_failures_id_seq'::regclass) NOT NULL,
    address text NOT NULL,
    at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    CONSTRAINT auth_failures_pkey PRIMARY KEY (id)
);

CREATE TABLE jobgate.auth_throttle (
    address text NOT NULL,
    failures timestamp with time zone[] NOT NULL,
    CONSTRAINT auth_throttle_pkey PRIMARY KEY (address)
);

CREATE TABLE jobgate.batches (
    id uuid NOT NULL,
    parent_id uuid,
    properties jsonb DEFAULT '{}'::jsonb NOT NULL,
    callbacks jsonb DEFAULT '[]'::jsonb NOT NULL,
    pending integer DEFAULT 0 NOT NULL,
    sealed boolean DEFAULT false NOT NULL,
    state text DEFAULT 'running'::text NOT NULL,
    dispatch_due boolean DEFAULT false NOT NULL,
    dispatched jsonb DEFAULT '[]'::jsonb NOT NULL,
    counts jsonb,
    created_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    finished_at timestamp with time zone,
    CONSTRAINT batches_pkey PRIMARY KEY (id),
    CONSTRAINT batches_state_check CHECK ((state = ANY (ARRAY['running'::text, 'finished'::text])))
);

CREATE TABLE jobgate.executions (
    job_id uuid NOT NULL,
    attempt integer NOT NULL,
    ran_on text NOT NULL,
    started_at timestamp with time zone NOT NULL,
    finished_at timestamp with time zone,
    outcome text NOT NULL,
    error jsonb,
    peak_rss_mb integer,
    CONSTRAINT executions_pkey PRIMARY KEY (job_id, attempt),
    CONSTRAINT executions_outcome_check CHECK ((outcome = ANY (ARRAY['running'::text, 'completed'::text, 'failed'::text, 'lost'::text]))),
    CONSTRAINT executions_ran_on_check CHECK ((ran_on = ANY (ARRAY['main'::text, 'fetcher'::text])))
);

CREATE TABLE jobgate.fetcher_wakes (
    waker text NOT NULL,
    since timestamp with time zone NOT NULL,
    until timestamp with time zone NOT NULL,
    CONSTRAINT fetcher_wakes_pkey PRIMARY KEY (waker)
);

CREATE TABLE jobgate.job_events (
    seq bigint DEFAULT nextval('jobgate.job_events_seq_seq'::regclass) NOT NULL,
    job_id uuid NOT NULL,
    job_seq integer NOT NULL,
    type text NOT NULL,
    attempt integer NOT NULL,
    at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    data jsonb DEFAULT '{}'::jsonb NOT NULL,
    set_aside_at timestamp with time zone,
    set_aside_reason text,
    CONSTRAINT job_events_pkey PRIMARY KEY (seq),
    CONSTRAINT job_events_job_id_job_seq_key UNIQUE (job_id, job_seq),
    CONSTRAINT job_events_type_check CHECK ((type = ANY (ARRAY['active'::text, 'progress'::text, 'completed'::text, 'failed'::text, 'lost'::text])))
);

CREATE TABLE jobgate.job_gates (
    name text NOT NULL,
    starts timestamp with time zone[] DEFAULT '{}'::timestamp with time zone[] NOT NULL,
    CONSTRAINT job_gates_pkey PRIMARY KEY (name)
);

CREATE TABLE jobgate.job_minutes (
    minute timestamp with time zone NOT NULL,
    name text NOT NULL,
    side text NOT NULL,
    shard bigint DEFAULT 0 NOT NULL,
    completed integer DEFAULT 0 NOT NULL,
    failed integer DEFAULT 0 NOT NULL,
    waits integer[] DEFAULT array_fill(0, ARRAY[16]) NOT NULL,
    CONSTRAINT job_minutes_pkey PRIMARY KEY (minute, name, side, shard),
    CONSTRAINT job_minutes_side_check CHECK ((side = ANY (ARRAY['main'::text, 'fetcher'::text])))
);

CREATE TABLE jobgate.jobs (
    id uuid NOT NULL,
    name text NOT NULL,
    route text NOT NULL,
    state text NOT NULL,
    payload jsonb NOT NULL,
    priority integer DEFAULT 0 NOT NULL,
    unique_key text,
    progress smallint DEFAULT 0 NOT NULL,
    progress_message text,
    attempts integer DEFAULT 0 NOT NULL,
    max_attempts integer NOT NULL,
    run_at timestamp with time zone NOT NULL,
    error jsonb,
    claimed_by text,
    claim_expires_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    updated_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    event_seq integer DEFAULT 0 NOT NULL,
    events_applied integer DEFAULT 0 NOT NULL,
    route_reason text DEFAULT 'definition'::text NOT NULL,
    retried_as uuid,
    traceparent text,
    forward_after timestamp with time zone,
    forward_tries integer DEFAULT 0 NOT NULL,
    request_id text,
    parent_id uuid,
    batch_id uuid,
    attempt_started_at timestamp with time zone,
    attempt_peak_rss_mb integer,
    CONSTRAINT jobs_pkey PRIMARY KEY (id),
    CONSTRAINT jobs_progress_check CHECK (((progress >= 0) AND (progress <= 100))),
    CONSTRAINT jobs_route_check CHECK ((route = ANY (ARRAY['main'::text, 'fetcher'::text]))),
    CONSTRAINT jobs_route_reason_check CHECK ((route_reason = ANY (ARRAY['definition'::text, 'override'::text, 'run-on-main'::text]))),
    CONSTRAINT jobs_state_check CHECK ((state = ANY (ARRAY['queued'::text, 'forwarding'::text, 'forwarded'::text, 'active'::text, 'completed'::text, 'failed'::text, 'cancelled'::text])))
) WITH (fillfactor=85);

CREATE TABLE jobgate.ledger_settings (
    key text NOT NULL,
    value jsonb NOT NULL,
    CONSTRAINT ledger_settings_pkey PRIMARY KEY (key)
);

CREATE TABLE jobgate.override_audit (
    id bigint DEFAULT nextval('jobgate.override_audit_id_seq'::regclass) NOT NULL,
    at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    reason text,
    old_value jsonb NOT NULL,
    new_value jsonb NOT NULL,
    CONSTRAINT override_audit_pkey PRIMARY KEY (id),
    CONSTRAINT override_audit_action_check CHECK ((action = ANY (ARRAY['on'::text, 'off'::text, 'expired'::text])))
);

CREATE TABLE jobgate.override_state (
    singleton boolean DEFAULT true NOT NULL,
    enabled boolean DEFAULT false NOT NULL,
    reason text,
    changed_by text,
    since timestamp with time zone,
    expires_at timestamp with time zone,
    CONSTRAINT override_state_pkey PRIMARY KEY (singleton),
    CONSTRAINT override_state_singleton_check CHECK (singleton)
);

CREATE TABLE jobgate.pauses (
    name text NOT NULL,
    reason text NOT NULL,
    paused_by text NOT NULL,
    paused_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    expires_at timestamp with time zone,
    CONSTRAINT pauses_pkey PRIMARY KEY (name)
);

CREATE TABLE jobgate.schedule_runs (
    schedule_id uuid NOT NULL,
    firing text NOT NULL,
    job_id uuid,
    manual boolean DEFAULT false NOT NULL,
    fired_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    due_at timestamp with time zone,
    CONSTRAINT schedule_runs_pkey PRIMARY KEY (schedule_id, firing)
);

CREATE TABLE jobgate.schedules (
    id uuid NOT NULL,
    name text NOT NULL,
    schedule text NOT NULL,
    time_zone text DEFAULT 'UTC'::text NOT NULL,
    payload jsonb DEFAULT '{}'::jsonb NOT NULL,
    enabled boolean DEFAULT true NOT NULL,
    source text NOT NULL,
    created_by text NOT NULL,
    updated_by text NOT NULL,
    created_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    updated_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    CONSTRAINT schedules_pkey PRIMARY KEY (id),
    CONSTRAINT schedules_source_check CHECK ((source = ANY (ARRAY['code'::text, 'runtime'::text])))
);

CREATE TABLE jobgate.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT schema_migrations_pkey PRIMARY KEY (version)
);

CREATE TABLE jobgate.signed_requests (
    webhook_id text NOT NULL,
    body_hash bytea NOT NULL,
    status integer,
    answer jsonb,
    expires_at timestamp with time zone NOT NULL,
    CONSTRAINT signed_requests_pkey PRIMARY KEY (webhook_id)
);

ALTER TABLE jobgate.schedule_runs
    ADD CONSTRAINT schedule_runs_schedule_id_fkey FOREIGN KEY (schedule_id) REFERENCES jobgate.schedules(id) ON DELETE CASCADE;

ALTER SEQUENCE jobgate.admin_audit_id_seq OWNED BY jobgate.admin_audit.id;

ALTER SEQUENCE jobgate.auth_failures_id_seq OWNED BY jobgate.auth_failures.id;

ALTER SEQUENCE jobgate.job_events_seq_seq OWNED BY jobgate.job_events.seq;

ALTER SEQUENCE jobgate.override_audit_id_seq OWNED BY jobgate.override_audit.id;

CREATE INDEX admin_sessions_expiry ON jobgate.admin_sessions USING btree (expires_at);

CREATE INDEX auth_failures_address ON jobgate.auth_failures USING btree (address, at);

CREATE INDEX auth_failures_at ON jobgate.auth_failures USING btree (at);

CREATE INDEX batches_by_parent ON jobgate.batches USING btree (parent_id) WHERE (parent_id IS NOT NULL);

CREATE INDEX batches_due ON jobgate.batches USING btree (finished_at) WHERE dispatch_due;

CREATE INDEX job_events_set_aside ON jobgate.job_events USING btree (seq) WHERE (set_aside_at IS NOT NULL);

CREATE INDEX jobs_by_batch ON jobgate.jobs USING btree (batch_id, state) WHERE (batch_id IS NOT NULL);

CREATE INDEX jobs_by_created ON jobgate.jobs USING btree (created_at DESC, id DESC);

CREATE INDEX jobs_by_name ON jobgate.jobs USING btree (name, created_at DESC, id DESC);

CREATE INDEX jobs_failed_or_cancelled ON jobgate.jobs USING btree (state, created_at DESC, id DESC) WHERE (state = ANY (ARRAY['failed'::text, 'cancelled'::text]));

CREATE INDEX jobs_failed_recent ON jobgate.jobs USING btree (finished_at) WHERE (state = 'failed'::text);

CREATE INDEX jobs_finished ON jobgate.jobs USING btree (finished_at) WHERE (finished_at IS NOT NULL);

CREATE INDEX jobs_live_by_name ON jobgate.jobs USING btree (name, state, route) WHERE (state = ANY (ARRAY['queued'::text, 'forwarding'::text, 'forwarded'::text, 'active'::text]));

CREATE INDEX jobs_on_main ON jobgate.jobs USING btree (created_at DESC, id DESC) WHERE (route = 'main'::text);

CREATE INDEX jobs_to_forward ON jobgate.jobs USING btree (priority DESC, created_at) WHERE ((route = 'fetcher'::text) AND (state = ANY (ARRAY['queued'::text, 'forwarding'::text])));

CREATE INDEX jobs_undelivered ON jobgate.jobs USING btree (created_at) WHERE ((route = 'fetcher'::text) AND (state = ANY (ARRAY['queued'::text, 'forwarding'::text])));

CREATE UNIQUE INDEX jobs_unique_live ON jobgate.jobs USING btree (name, unique_key) WHERE ((unique_key IS NOT NULL) AND (state = ANY (ARRAY['queued'::text, 'forwarding'::text, 'forwarded'::text, 'active'::text])));

CREATE INDEX schedule_runs_recent ON jobgate.schedule_runs USING btree (schedule_id, fired_at DESC);

CREATE UNIQUE INDEX schedules_from_code ON jobgate.schedules USING btree (name) WHERE (source = 'code'::text);

CREATE INDEX signed_requests_expiry ON jobgate.signed_requests USING btree (expires_at);

CREATE OR REPLACE FUNCTION jobgate.apply_job_event(p_job uuid, p_seq integer, p_type text, p_attempt integer, p_at timestamp with time zone, p_state text, p_started_at timestamp with time zone, p_finished_at timestamp with time zone, p_progress integer, p_message text, p_error jsonb, p_peak_rss_mb integer)
 RETURNS boolean
 LANGUAGE plpgsql
 SET search_path TO 'jobgate'
AS $function$
DECLARE
  v_applied  integer;
  v_state    text;
  v_route    text;
  v_attempts integer;
BEGIN
  SELECT events_applied, state, route, attempts INTO v_applied, v_state, v_route, v_attempts FROM jobs WHERE id = p_job FOR UPDATE;
  IF NOT FOUND OR p_seq <= v_applied THEN
    RETURN false;
  END IF;
  -- a job finished, cancelled or taken over here stays so; its events are still counted as applied
  IF v_state IN ('completed', 'failed', 'cancelled') OR v_route <> 'fetcher' THEN
    UPDATE jobs SET events_applied = p_seq, updated_at = clock_timestamp() WHERE id = p_job;
    RETURN true;
  END IF;

  IF p_type = 'active' AND v_attempts < p_attempt THEN
    -- not granted here (yet): counted, not shown
    UPDATE jobs SET events_applied = p_seq WHERE id = p_job;
  ELSIF p_type = 'active' THEN
    -- the attempt runs: the job's row says so (main's grant set its start; a job claimed before
    -- 026 has none, and takes the event's)
    UPDATE jobs SET events_applied = p_seq, updated_at = clock_timestamp(),
           state = 'active', attempts = greatest(attempts, p_attempt),
           started_at = coalesce(started_at, p_started_at, p_at),
           attempt_started_at = CASE WHEN p_attempt > attempts OR attempt_started_at IS NULL THEN coalesce(p_started_at, p_at) ELSE attempt_started_at END
     WHERE id = p_job;
  ELSIF p_type = 'progress' THEN
    UPDATE jobs SET events_applied = p_seq, updated_at = clock_timestamp(),
           progress = coalesce(p_progress, progress), progress_message = p_message
     WHERE id = p_job;
  ELSE
    -- completed, failed or lost: the attempt ends. Its row is written when it did not complete the
    -- job, when it has one (a release before 026 wrote it as it started), or when a later attempt
    -- holds the job (the job's row speaks for that one).
    IF p_type <> 'completed' OR p_attempt < v_attempts
       OR EXISTS (SELECT 1 FROM executions x WHERE x.job_id = p_job AND x.attempt = p_attempt) THEN
      INSERT INTO executions AS e (job_id, attempt, ran_on, started_at, outcome, finished_at, error, peak_rss_mb)
      VALUES (p_job, p_attempt, 'fetcher', coalesce(p_started_at, p_at), p_type, coalesce(p_finished_at, p_at), p_error, p_peak_rss_mb)
      ON CONFLICT (job_id, attempt) DO UPDATE
        SET outcome = excluded.outcome, finished_at = excluded.finished_at, error = excluded.error,
            peak_rss_mb = coalesce(excluded.peak_rss_mb, e.peak_rss_mb);
    END IF;
    UPDATE jobs SET events_applied = p_seq, updated_at = clock_timestamp(),
      state = CASE
        WHEN p_type = 'completed' THEN 'completed'
        WHEN p_state = 'failed' THEN 'failed'
        ELSE 'forwarded'              -- the fetcher retries it
      END,
      attempts = greatest(attempts, p_attempt),
      started_at = coalesce(started_at, p_started_at),
      attempt_started_at = CASE WHEN p_attempt > attempts OR attempt_started_at IS NULL THEN coalesce(p_started_at, p_at) ELSE attempt_started_at END,
      attempt_peak_rss_mb = CASE WHEN p_attempt >= attempts THEN coalesce(p_peak_rss_mb, attempt_peak_rss_mb) ELSE attempt_peak_rss_mb END,
      -- the attempt is over: its claim ends with it
      claimed_by = CASE WHEN claimed_by = 'fetcher' AND attempts <= p_attempt THEN NULL ELSE claimed_by END,
      claim_expires_at = CASE WHEN claimed_by = 'fetcher' AND attempts <= p_attempt THEN NULL ELSE claim_expires_at END,
      error = CASE WHEN p_type = 'completed' THEN NULL ELSE coalesce(p_error, error) END,
      progress = CASE WHEN p_type = 'completed' THEN 100 ELSE progress END,
      finished_at = CASE WHEN p_type = 'completed' OR p_state = 'failed' THEN coalesce(p_finished_at, p_at) ELSE NULL END
     WHERE id = p_job;
  END IF;
  RETURN true;
END
$function$;

CREATE OR REPLACE FUNCTION jobgate.apply_job_events(p_events jsonb)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO 'jobgate'
AS $function$
DECLARE
  e         record;
  v_applied integer := 0;
BEGIN
  FOR e IN
    SELECT * FROM jsonb_to_recordset(p_events) AS x(
      job uuid, seq integer, type text, attempt integer, at timestamptz, state text,
      started_at timestamptz, finished_at timestamptz, progress integer, message text,
      error jsonb, peak_rss_mb integer)
    ORDER BY job, seq
  LOOP
    IF apply_job_event(e.job, e.seq, e.type, e.attempt, e.at, e.state, e.started_at, e.finished_at,
                       e.progress, e.message, e.error, e.peak_rss_mb) THEN
      v_applied := v_applied + 1;
    END IF;
  END LOOP;
  RETURN v_applied;
END
$function$;

CREATE OR REPLACE FUNCTION jobgate.apply_job_events_finishing(p_events jsonb, OUT applied integer, OUT finished jsonb)
 RETURNS record
 LANGUAGE plpgsql
 SET search_path TO 'jobgate'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION jobgate.batch_member_changed()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'jobgate'
AS $function$
DECLARE
  v_delta integer := 0;
BEGIN
  IF NEW.state NOT IN ('completed', 'failed', 'cancelled') THEN v_delta := 1; END IF;
  IF OLD.state NOT IN ('completed', 'failed', 'cancelled') THEN v_delta := v_delta - 1; END IF;
  IF v_delta <> 0 THEN PERFORM batch_settle(NEW.batch_id, v_delta); END IF;
  RETURN NULL;
END $function$;

CREATE OR REPLACE FUNCTION jobgate.batch_seal(p_id uuid)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO 'jobgate'
AS $function$
BEGIN
  UPDATE batches SET sealed = true WHERE id = p_id AND NOT sealed;
  IF FOUND THEN PERFORM batch_settle(p_id, 0); END IF;
END $function$;

CREATE OR REPLACE FUNCTION jobgate.batch_settle(p_id uuid, p_delta integer)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO 'jobgate'
AS $function$
BEGIN
  UPDATE batches b
     SET pending = b.pending + p_delta,
         state = CASE WHEN b.sealed AND b.pending + p_delta = 0 THEN 'finished' ELSE 'running' END,
         finished_at = CASE WHEN b.sealed AND b.pending + p_delta = 0 THEN clock_timestamp() END,
         dispatch_due = b.dispatch_due OR (b.sealed AND b.pending + p_delta = 0)
   WHERE b.id = p_id;
END $function$;

CREATE OR REPLACE FUNCTION jobgate.claim_attempt(p_id uuid, p_attempt integer, p_ran_on text, p_concurrency integer, p_per_second integer, p_claim_seconds integer)
 RETURNS TABLE(outcome text, wait_ms integer)
 LANGUAGE sql
 SET search_path TO 'jobgate'
AS $function$ SELECT * FROM claim_attempt(p_id, p_attempt, p_ran_on, p_concurrency, p_per_second, p_claim_seconds, true) $function$;

CREATE OR REPLACE FUNCTION jobgate.claim_attempt(p_id uuid, p_attempt integer, p_ran_on text, p_concurrency integer, p_per_second integer, p_claim_seconds integer, p_running_row boolean)
 RETURNS TABLE(outcome text, wait_ms integer)
 LANGUAGE plpgsql
 SET search_path TO 'jobgate'
AS $function$
BEGIN
  IF p_ran_on = 'main' AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = p_id) THEN
    RETURN QUERY SELECT 'claimed'::text, 0;
    RETURN;
  END IF;
  RETURN QUERY SELECT * FROM claim_ledger_attempt(p_id, p_attempt, p_ran_on, p_concurrency, p_per_second, p_claim_seconds, p_running_row);
END
$function$;

CREATE OR REPLACE FUNCTION jobgate.claim_attempts(p_claims jsonb)
 RETURNS TABLE(n integer, outcome text, wait_ms integer)
 LANGUAGE plpgsql
 SET search_path TO 'jobgate'
AS $function$
DECLARE
  c         record;
  v_now     timestamptz;
  v_paused  text[];
  v_granted integer[];
BEGIN
  PERFORM 1 FROM jobs j WHERE j.id IN (SELECT x.id FROM jsonb_to_recordset(p_claims) AS x(id uuid)) ORDER BY j.id FOR UPDATE;
  -- (read after the locks, as claim_attempt reads them: a pause holds from its commit on)
  v_paused := ARRAY(SELECT p.name FROM pauses p WHERE p.expires_at IS NULL OR p.expires_at > clock_timestamp());
  v_now := clock_timestamp();
  WITH asked AS (
    SELECT x.*, count(*) OVER (PARTITION BY x.id) AS times
      FROM jsonb_to_recordset(p_claims) AS x(n integer, id uuid, attempt integer, ran_on text, claim_seconds integer, running_row boolean)
  ), granted AS (
    UPDATE jobs j SET state = 'active', attempts = greatest(j.attempts, 1), claimed_by = a.ran_on,
           claim_expires_at = v_now + a.claim_seconds * interval '1 second',
           started_at = coalesce(j.started_at, v_now), attempt_started_at = v_now, attempt_peak_rss_mb = NULL,
           updated_at = v_now
      FROM asked a
     WHERE j.id = a.id AND a.times = 1 AND a.attempt = 1 AND a.running_row IS FALSE
       AND j.state IN ('queued', 'forwarding', 'forwarded') AND j.route = a.ran_on
       AND NOT (j.name = ANY (v_paused) OR '*' = ANY (v_paused))
    RETURNING a.n
  )
  SELECT coalesce(array_agg(granted.n), '{}') INTO v_granted FROM granted;

  RETURN QUERY SELECT g.n, 'claimed'::text, 0 FROM unnest(v_granted) AS g(n);
  FOR c IN
    SELECT * FROM jsonb_to_recordset(p_claims) AS x(n integer, id uuid, attempt integer, ran_on text, claim_seconds integer, running_row boolean)
     WHERE NOT (x.n = ANY (v_granted))
     ORDER BY x.id, x.n
  LOOP
    RETURN QUERY SELECT c.n, r.outcome, r.wait_ms FROM claim_attempt(c.id, c.attempt, c.ran_on, NULL, NULL, c.claim_seconds, coalesce(c.running_row, true)) r;
  END LOOP;
END
$function$;

CREATE OR REPLACE FUNCTION jobgate.claim_ledger_attempt(p_id uuid, p_attempt integer, p_ran_on text, p_concurrency integer, p_per_second integer, p_claim_seconds integer, p_running_row boolean)
 RETURNS TABLE(outcome text, wait_ms integer)
 LANGUAGE plpgsql
 SET search_path TO 'jobgate'
AS $function$
DECLARE
  v_name     text;
  v_state    text;
  v_route    text;
  v_starts   timestamptz[];
  v_active   integer;
  v_now      timestamptz;
  v_n        integer;
  v_attempts integer;
  v_expires  timestamptz;
  v_by       text;
  v_began    timestamptz;
BEGIN
  -- the job's row lock serializes claims of one job (always taken before a gate lock)
  SELECT j.name, j.state, j.route, j.attempts, j.claim_expires_at, j.claimed_by, coalesce(j.attempt_started_at, j.started_at)
    INTO v_name, v_state, v_route, v_attempts, v_expires, v_by, v_began
    FROM jobs j WHERE j.id = p_id FOR UPDATE;
  IF NOT FOUND OR v_state IN ('completed', 'failed', 'cancelled') OR v_route <> p_ran_on THEN
    RETURN QUERY SELECT 'gone'::text, 0;
    RETURN;
  END IF;
  -- A paused job (its name, or every job: '*') does not start: its runner hands it back to the queue.
  IF pause_of(v_name) IS NOT NULL THEN
    RETURN QUERY SELECT 'paused'::text, 1000;
    RETURN;
  END IF;
  -- Compare-and-set: another attempt whose claim is still alive keeps the job; this one waits
  -- until that claim ends or expires (its runner stopped refreshing it).
  IF v_state = 'active' AND (v_attempts <> p_attempt OR v_by IS DISTINCT FROM p_ran_on) AND v_expires > clock_timestamp() THEN
    RETURN QUERY SELECT 'wait'::text,
      least(1000, greatest(1, ceil(extract(epoch FROM (v_expires - clock_timestamp())) * 1000)::integer));
    RETURN;
  END IF;

  IF p_concurrency IS NOT NULL OR p_per_second IS NOT NULL THEN
    INSERT INTO job_gates (name) VALUES (v_name) ON CONFLICT DO NOTHING;
    SELECT g.starts INTO v_starts FROM job_gates g WHERE g.name = v_name FOR UPDATE;
    v_now := clock_timestamp();   -- read after the lock, so starts are recorded in order

    IF p_concurrency IS NOT NULL THEN
      SELECT count(*) INTO v_active FROM jobs j
       WHERE j.name = v_name AND j.state = 'active' AND j.id <> p_id AND j.claim_expires_at > v_now;
      IF v_active >= p_concurrency THEN
        RETURN QUERY SELECT 'wait'::text, 200;
        RETURN;
      END IF;
    END IF;

    IF p_per_second IS NOT NULL THEN
      v_starts := ARRAY(SELECT s FROM unnest(v_starts) s WHERE s > v_now - interval '1 second' ORDER BY s);
      v_n := cardinality(v_starts);
      IF v_n >= p_per_second THEN
        RETURN QUERY SELECT 'wait'::text,
          greatest(1, ceil(extract(epoch FROM (v_starts[v_n - p_per_second + 1] + interval '1 second' - v_now)) * 1000)::integer);
        RETURN;
      END IF;
      UPDATE job_gates SET starts = v_starts || v_now WHERE name = v_name;
    END IF;
  ELSE
    v_now := clock_timestamp();
  END IF;

  -- earlier attempts cut short: their running rows, and the one that held the job without a row
  UPDATE executions e SET outcome = 'lost', finished_at = v_now,
         error = jsonb_build_object('code', 'JG_JOB_LOST', 'message', 'the attempt was cut short (process crashed or was killed)')
   WHERE e.job_id = p_id AND e.outcome = 'running' AND e.attempt < p_attempt;
  IF v_state = 'active' AND v_attempts BETWEEN 1 AND p_attempt - 1 THEN
    INSERT INTO executions (job_id, attempt, ran_on, started_at, outcome, finished_at, error)
    VALUES (p_id, v_attempts, coalesce(v_by, v_route), coalesce(v_began, v_now), 'lost', v_now,
            jsonb_build_object('code', 'JG_JOB_LOST', 'message', 'the attempt was cut short (process crashed or was killed)'))
    ON CONFLICT (job_id, attempt) DO NOTHING;
  END IF;

  UPDATE jobs SET state = 'active', attempts = greatest(attempts, p_attempt), claimed_by = p_ran_on,
         claim_expires_at = v_now + p_claim_seconds * interval '1 second',
         started_at = coalesce(started_at, v_now), attempt_started_at = v_now, attempt_peak_rss_mb = NULL,
         updated_at = v_now
   WHERE id = p_id;

  IF p_running_row THEN
    INSERT INTO executions (job_id, attempt, ran_on, started_at, outcome)
    VALUES (p_id, p_attempt, p_ran_on, v_now, 'running')
    ON CONFLICT (job_id, attempt) DO UPDATE
      SET ran_on = excluded.ran_on, started_at = excluded.started_at, outcome = 'running', finished_at = NULL, error = NULL;
  END IF;

  RETURN QUERY SELECT 'claimed'::text, 0;
END
$function$;

CREATE OR REPLACE FUNCTION jobgate.emit_job_event(p_job uuid, p_type text, p_attempt integer, p_data jsonb)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO 'jobgate'
AS $function$
DECLARE
  v_seq integer;
BEGIN
  IF NOT coalesce((SELECT (value #>> '{}')::boolean FROM ledger_settings WHERE key = 'emit_events'), false) THEN
    RETURN;
  END IF;
  UPDATE jobs SET event_seq = event_seq + 1 WHERE id = p_job RETURNING event_seq INTO v_seq;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  INSERT INTO job_events (job_id, job_seq, type, attempt, data) VALUES (p_job, v_seq, p_type, p_attempt, p_data);
END
$function$;

CREATE OR REPLACE FUNCTION jobgate.executions_emit()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'jobgate'
AS $function$
DECLARE
  v_job record;
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.outcome = OLD.outcome THEN
    RETURN NULL;
  END IF;
  IF NOT coalesce((SELECT (value #>> '{}')::boolean FROM ledger_settings WHERE key = 'emit_events'), false) THEN
    RETURN NULL;
  END IF;
  SELECT state, max_attempts INTO v_job FROM jobs WHERE id = NEW.job_id;
  PERFORM emit_job_event(
    NEW.job_id,
    CASE NEW.outcome WHEN 'running' THEN 'active' ELSE NEW.outcome END,
    NEW.attempt,
    jsonb_strip_nulls(jsonb_build_object(
      'state', v_job.state,
      'maxAttempts', v_job.max_attempts,
      'startedAt', NEW.started_at,
      'finishedAt', NEW.finished_at,
      'error', NEW.error,
      'peakRssMb', NEW.peak_rss_mb)));
  RETURN NULL;
END
$function$;

CREATE OR REPLACE FUNCTION jobgate.hold_record(p_boss_schema text, p_name text, p_id uuid)
 RETURNS boolean
 LANGUAGE plpgsql
 SET search_path TO 'jobgate'
AS $function$
DECLARE
  v_n integer;
BEGIN
  EXECUTE format('UPDATE %I.job SET blocked = true WHERE name = $1 AND id = $2 AND state IN (''created'', ''retry'') AND NOT blocked', p_boss_schema)
    USING p_name, p_id;
  GET DIAGNOSTICS v_n = ROW_COUNT;
  RETURN v_n > 0;
END;
$function$;

CREATE OR REPLACE FUNCTION jobgate.jobs_deleted()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'jobgate'
AS $function$
BEGIN
  DELETE FROM executions WHERE job_id IN (SELECT id FROM gone);
  RETURN NULL;
END
$function$;

CREATE OR REPLACE FUNCTION jobgate.jobs_progress_emit()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'jobgate'
AS $function$
BEGIN
  IF NEW.state = 'active' AND (NEW.progress IS DISTINCT FROM OLD.progress OR NEW.progress_message IS DISTINCT FROM OLD.progress_message) THEN
    PERFORM emit_job_event(NEW.id, 'progress', NEW.attempts,
      jsonb_strip_nulls(jsonb_build_object('progress', NEW.progress, 'message', NEW.progress_message)));
  END IF;
  RETURN NULL;
END
$function$;

CREATE OR REPLACE FUNCTION jobgate.pause_of(p_name text)
 RETURNS text
 LANGUAGE sql
 SET search_path TO 'jobgate'
AS $function$
  SELECT p.name FROM pauses p
   WHERE p.name IN (p_name, '*') AND (p.expires_at IS NULL OR p.expires_at > clock_timestamp())
   ORDER BY p.name = '*' LIMIT 1
$function$;

CREATE OR REPLACE FUNCTION jobgate.wait_bucket_bounds()
 RETURNS integer[]
 LANGUAGE sql
 IMMUTABLE
AS $function$ SELECT ARRAY[10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 900000, 3600000] $function$;

CREATE VIEW jobgate.attempts AS
 SELECT e.job_id,
    e.attempt,
    e.ran_on,
    e.started_at,
    e.finished_at,
    e.outcome,
    e.error,
    e.peak_rss_mb
   FROM jobgate.executions e
UNION ALL
 SELECT j.id AS job_id,
    j.attempts AS attempt,
    j.route AS ran_on,
    COALESCE(j.attempt_started_at, j.started_at, j.created_at) AS started_at,
        CASE
            WHEN j.state <> 'active'::text AND NOT (j.claimed_by IS NOT NULL AND j.claim_expires_at > clock_timestamp()) THEN j.finished_at
            ELSE NULL::timestamp with time zone
        END AS finished_at,
        CASE
            WHEN j.state = 'active'::text OR j.claimed_by IS NOT NULL AND j.claim_expires_at > clock_timestamp() THEN 'running'::text
            WHEN j.state = 'completed'::text THEN 'completed'::text
            ELSE 'lost'::text
        END AS outcome,
        CASE
            WHEN j.state = 'active'::text OR j.state = 'completed'::text OR j.claimed_by IS NOT NULL AND j.claim_expires_at > clock_timestamp() THEN NULL::jsonb
            ELSE jsonb_build_object('code', 'JG_JOB_LOST', 'message', 'the attempt was cut short (process crashed or was killed)')
        END AS error,
    j.attempt_peak_rss_mb AS peak_rss_mb
   FROM jobgate.jobs j
  WHERE j.attempts > 0 AND NOT (EXISTS ( SELECT 1
           FROM jobgate.executions x
          WHERE x.job_id = j.id AND x.attempt = j.attempts));

CREATE TRIGGER executions_emit AFTER INSERT OR UPDATE OF outcome ON jobgate.executions FOR EACH ROW EXECUTE FUNCTION jobgate.executions_emit();

CREATE TRIGGER batch_members AFTER UPDATE OF state ON jobgate.jobs FOR EACH ROW WHEN (((new.batch_id IS NOT NULL) AND ((old.state = ANY (ARRAY['completed'::text, 'failed'::text, 'cancelled'::text])) <> (new.state = ANY (ARRAY['completed'::text, 'failed'::text, 'cancelled'::text]))))) EXECUTE FUNCTION jobgate.batch_member_changed();

CREATE TRIGGER jobs_deleted AFTER DELETE ON jobgate.jobs REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION jobgate.jobs_deleted();

CREATE TRIGGER jobs_progress_emit AFTER UPDATE OF progress, progress_message ON jobgate.jobs FOR EACH ROW EXECUTE FUNCTION jobgate.jobs_progress_emit();
