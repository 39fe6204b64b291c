-- Baton's schema: named queues, jobs, and the append-only history of every state change.
CREATE SCHEMA IF NOT EXISTS baton;

CREATE TYPE baton.job_state AS ENUM (
    'scheduled',  -- waiting for run_at (submitted with a delay)
    'available',  -- due, waiting for a worker
    'running',    -- claimed under a lease
    'retrying',   -- failed, waiting for its backoff to pass
    'succeeded',  -- terminal
    'dead',       -- terminal: attempts exhausted or failed permanently (re-drivable)
    'canceled'    -- terminal (re-drivable)
);

-- One row per named queue, created on first use (submit, hand-off or a worker
-- starting on it).
CREATE TABLE baton.queues (
    name       text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    paused     boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE baton.jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue            text NOT NULL,
    state            baton.job_state NOT NULL,
    payload          jsonb NOT NULL,
    priority         smallint NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 100),
    run_at           timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- NULL until the first claim when the submitter left it to the stage: the
    -- claim fills in the stage's max_attempts.
    max_attempts     integer CHECK (max_attempts BETWEEN 1 AND 1000),
    -- Fencing: bumped by every claim; every later write is conditioned on it.
    lease_token      bigint NOT NULL DEFAULT 0,
    lease_expires_at timestamptz,
    leased_by        text,
    last_error       text,
    result           jsonb,
    -- Lineage: the job that handed off to this one, and its position in that hand-off.
    parent_id        bigint,
    parent_seq       integer,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    CHECK ((parent_id IS NULL) = (parent_seq IS NULL)),
    -- The second guard behind the lease fence: a job hands off to each position once.
    CONSTRAINT jobs_handoff_once UNIQUE (parent_id, parent_seq)
) WITH (
    -- Room on each page so heartbeats (which touch no indexed column) stay HOT updates.
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02
);

-- The claim path: only jobs waiting to run, shaped like the claim's WHERE and ORDER BY.
-- Finished jobs leave this index, so history never slows claiming.
CREATE INDEX jobs_claim_idx ON baton.jobs (queue, priority, run_at, id)
    WHERE state IN ('scheduled', 'available', 'retrying');
-- The reaper's path: running jobs only (lease_expires_at is deliberately not indexed).
CREATE INDEX jobs_running_idx ON baton.jobs (id) WHERE state = 'running';
-- Promotion of delayed and retrying jobs once due.
CREATE INDEX jobs_due_idx ON baton.jobs (run_at) WHERE state IN ('scheduled', 'retrying');
-- Listing and filtering (newest first) for the CLI, API and dashboard.
CREATE INDEX jobs_queue_state_idx ON baton.jobs (queue, state, id);
CREATE INDEX jobs_parent_idx ON baton.jobs (parent_id) WHERE parent_id IS NOT NULL;

-- Request-level idempotency (IETF Idempotency-Key semantics): a key remembers
-- the fingerprint of the request that first used it and the jobs it created.
-- Keys live 24 hours; maintenance deletes older ones.
CREATE TABLE baton.idempotency_keys (
    key         text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint bytea NOT NULL,
    job_ids     bigint[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idempotency_keys_created_idx ON baton.idempotency_keys (created_at);

-- Append-only history: one row per state change, written in the same
-- transaction (usually the same statement) as the change itself.
CREATE TABLE baton.job_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      bigint NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    from_state  baton.job_state,           -- NULL when the job was created
    to_state    baton.job_state NOT NULL,
    attempt     integer NOT NULL,
    -- The claim a change was made under: for changes out of running, the
    -- token the writer presented (the fence makes it the current one).
    lease_token bigint NOT NULL,
    worker      text,
    error       text
) WITH (autovacuum_vacuum_scale_factor = 0.05);
CREATE INDEX job_events_job_idx ON baton.job_events (job_id, id);

CREATE FUNCTION baton.forbid_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'baton.job_events is append-only';
END $$;
CREATE TRIGGER job_events_append_only BEFORE UPDATE ON baton.job_events
    FOR EACH ROW EXECUTE FUNCTION baton.forbid_update();

-- One row per queue: how many jobs are in each state, and how long the oldest
-- due job has waited.
CREATE VIEW baton.queue_summary AS
SELECT q.name AS queue,
       count(j.id) FILTER (WHERE j.state = 'scheduled') AS scheduled,
       count(j.id) FILTER (WHERE j.state = 'available') AS available,
       count(j.id) FILTER (WHERE j.state = 'running')   AS running,
       count(j.id) FILTER (WHERE j.state = 'retrying')  AS retrying,
       count(j.id) FILTER (WHERE j.state = 'succeeded') AS succeeded,
       count(j.id) FILTER (WHERE j.state = 'dead')      AS dead,
       count(j.id) FILTER (WHERE j.state = 'canceled')  AS canceled,
       coalesce(now() - min(j.run_at) FILTER (
           WHERE j.state IN ('scheduled', 'available', 'retrying') AND j.run_at <= now()
       ), interval '0') AS oldest_available_age
FROM baton.queues q
LEFT JOIN baton.jobs j ON j.queue = q.name
GROUP BY q.name;
