-- Reports: cheap per-queue counts, and the reporting views of docs/reports.md.

-- Counts per queue and state, kept by triggers in the same transaction as every
-- change to baton.jobs, so that queue_summary never scans the history.
--
-- Writers never update a shared counter row (that would serialize every claim
-- and completion of a queue on one row lock): each statement appends its net
-- change to job_count_deltas, and maintenance folds the deltas into
-- job_counts every second. Readers add the two.
CREATE TABLE baton.job_counts (
    queue text NOT NULL,
    state baton.job_state NOT NULL,
    n     bigint NOT NULL,
    PRIMARY KEY (queue, state)
);

CREATE TABLE baton.job_count_deltas (
    queue text NOT NULL,
    state baton.job_state NOT NULL,
    n     bigint NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000);

INSERT INTO baton.job_counts (queue, state, n)
SELECT queue, state, count(*) FROM baton.jobs GROUP BY queue, state;

CREATE FUNCTION baton.count_inserted_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO baton.job_count_deltas (queue, state, n)
    SELECT queue, state, count(*) FROM new_jobs GROUP BY queue, state;
    RETURN NULL;
END $$;

CREATE FUNCTION baton.count_updated_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO baton.job_count_deltas (queue, state, n)
    SELECT queue, state, sum(n) FROM (
        SELECT queue, state, 1 AS n FROM new_jobs
        UNION ALL
        SELECT queue, state, -1 FROM old_jobs
    ) change
    GROUP BY queue, state
    HAVING sum(n) <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION baton.count_deleted_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO baton.job_count_deltas (queue, state, n)
    SELECT queue, state, -count(*) FROM old_jobs GROUP BY queue, state;
    RETURN NULL;
END $$;

-- Statement-level triggers with transition tables: one delta row per queue
-- and state a statement changed, however many jobs it touched.
CREATE TRIGGER jobs_count_insert AFTER INSERT ON baton.jobs
    REFERENCING NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION baton.count_inserted_jobs();
CREATE TRIGGER jobs_count_update AFTER UPDATE ON baton.jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION baton.count_updated_jobs();
CREATE TRIGGER jobs_count_delete AFTER DELETE ON baton.jobs
    REFERENCING OLD TABLE AS old_jobs FOR EACH STATEMENT EXECUTE FUNCTION baton.count_deleted_jobs();
-- TRUNCATE would bypass the row triggers: clear the counts with it.
CREATE FUNCTION baton.count_truncated_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM baton.job_counts;
    DELETE FROM baton.job_count_deltas;
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_count_truncate AFTER TRUNCATE ON baton.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION baton.count_truncated_jobs();

-- Time windows over history without scanning it: BRIN indexes cost almost
-- nothing to keep on columns that grow with time.
CREATE INDEX jobs_finished_at_brin ON baton.jobs USING brin (finished_at);
CREATE INDEX jobs_created_at_brin ON baton.jobs USING brin (created_at);
CREATE INDEX job_events_at_brin ON baton.job_events USING brin (at);

-- queue_summary: same columns as before, now from the counters. Only
-- oldest_available_age reads jobs, through the claim index (waiting jobs only).
CREATE OR REPLACE VIEW baton.queue_summary AS
SELECT q.name AS queue,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'scheduled'), 0)::bigint AS scheduled,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'available'), 0)::bigint AS available,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'running'), 0)::bigint   AS running,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'retrying'), 0)::bigint  AS retrying,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'succeeded'), 0)::bigint AS succeeded,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'dead'), 0)::bigint      AS dead,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'canceled'), 0)::bigint  AS canceled,
       coalesce((SELECT now() - min(j.run_at)
                 FROM baton.jobs j
                 WHERE j.queue = q.name
                   AND j.state IN ('scheduled', 'available', 'retrying')
                   AND j.run_at <= now()), interval '0')::interval AS oldest_available_age
FROM baton.queues q
LEFT JOIN (
    SELECT queue, state, n FROM baton.job_counts
    UNION ALL
    SELECT queue, state, n FROM baton.job_count_deltas
) c ON c.queue = q.name
GROUP BY q.name;

-- The reporting views cover a time window: since the time in the setting
-- baton.since when it is set (SET baton.since = '2026-11-01'; baton report
-- --since does this), else a default window per view.
CREATE FUNCTION baton.report_since(fallback interval) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('baton.since', true), '')::timestamptz, now() - fallback)
$$;

-- stage_latency: per queue, over jobs finished in the window (default 1 hour):
-- how long jobs waited to start (started_at - run_at, of the last attempt) and
-- how long they ran (finished_at - started_at), in seconds.
CREATE VIEW baton.stage_latency AS
SELECT j.queue,
       count(*) AS jobs,
       percentile_cont(0.50) WITHIN GROUP (ORDER BY extract(epoch FROM j.started_at - j.run_at)) AS wait_p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM j.started_at - j.run_at)) AS wait_p95,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM j.started_at - j.run_at)) AS wait_p99,
       percentile_cont(0.50) WITHIN GROUP (ORDER BY extract(epoch FROM j.finished_at - j.started_at)) AS run_p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM j.finished_at - j.started_at)) AS run_p95,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM j.finished_at - j.started_at)) AS run_p99
FROM baton.jobs j
WHERE j.finished_at >= baton.report_since(interval '1 hour')
  AND j.started_at IS NOT NULL
GROUP BY j.queue;

-- throughput_hourly: per queue and hour of the window (default 24 hours):
-- jobs that succeeded, failed attempts that were retried, and jobs that went
-- dead or were canceled.
CREATE VIEW baton.throughput_hourly AS
SELECT queue, hour::timestamptz AS hour,
       sum(succeeded)::bigint AS succeeded, sum(retried)::bigint AS retried,
       sum(dead)::bigint AS dead, sum(canceled)::bigint AS canceled
FROM (
    SELECT j.queue, date_trunc('hour', j.finished_at)::timestamptz AS hour,
           count(*) FILTER (WHERE j.state = 'succeeded') AS succeeded, 0 AS retried,
           count(*) FILTER (WHERE j.state = 'dead') AS dead,
           count(*) FILTER (WHERE j.state = 'canceled') AS canceled
    FROM baton.jobs j
    WHERE j.finished_at >= baton.report_since(interval '24 hours')
    GROUP BY 1, 2
    UNION ALL
    SELECT j.queue, date_trunc('hour', e.at)::timestamptz, 0, count(*), 0, 0
    FROM baton.job_events e
    JOIN baton.jobs j ON j.id = e.job_id
    WHERE e.at >= baton.report_since(interval '24 hours') AND e.to_state = 'retrying'
    GROUP BY 1, 2
) t
GROUP BY queue, hour;

-- failures: failed attempts in the window (default 24 hours), grouped by
-- queue and error text.
CREATE VIEW baton.failures AS
SELECT j.queue, e.error,
       count(*) AS attempts,
       count(DISTINCT e.job_id) AS jobs,
       count(*) FILTER (WHERE e.to_state = 'dead') AS dead,
       min(e.at)::timestamptz AS first_seen,
       max(e.at)::timestamptz AS last_seen,
       ((array_agg(e.job_id ORDER BY e.at DESC))[1])::bigint AS last_job_id
FROM baton.job_events e
JOIN baton.jobs j ON j.id = e.job_id
WHERE e.at >= baton.report_since(interval '24 hours') AND e.error IS NOT NULL
GROUP BY j.queue, e.error;

-- stuck_jobs: running past their lease (the worker is gone and the reaper
-- has not run yet), or due for more than a minute without being claimed (no
-- worker serves the queue, it is paused, or its workers are saturated).
CREATE VIEW baton.stuck_jobs AS
SELECT j.id, j.queue, j.state, 'lease expired' AS reason,
       extract(epoch FROM now() - j.lease_expires_at)::float8 AS overdue_seconds, j.attempts, j.leased_by
FROM baton.jobs j
WHERE j.state = 'running' AND j.lease_expires_at < now()
UNION ALL
SELECT j.id, j.queue, j.state, 'not claimed',
       extract(epoch FROM now() - j.run_at)::float8, j.attempts, j.leased_by
FROM baton.jobs j
WHERE j.state IN ('scheduled', 'available', 'retrying') AND j.run_at < now() - interval '1 minute';

-- pipeline_lineage: for each root job (submitted, not handed off) created in
-- the window (default 1 hour), every hop of its journey through the stages:
-- depth 0 is the root, depth 1 the job it handed off to, and so on; seconds
-- is the time from the hop's creation to its end (or to now).
CREATE VIEW baton.pipeline_lineage AS
WITH RECURSIVE hop AS (
    SELECT j.id AS root_id, 0 AS depth, j.id, j.parent_id, j.queue, j.state, j.attempts,
           j.created_at, j.started_at, j.finished_at
    FROM baton.jobs j
    WHERE j.created_at >= baton.report_since(interval '1 hour') AND j.parent_id IS NULL
    UNION ALL
    SELECT h.root_id, h.depth + 1, c.id, c.parent_id, c.queue, c.state, c.attempts,
           c.created_at, c.started_at, c.finished_at
    FROM hop h
    JOIN baton.jobs c ON c.parent_id = h.id
    WHERE h.depth < 100
)
SELECT root_id, depth, id AS job_id, parent_id, queue, state, attempts, created_at, started_at, finished_at,
       extract(epoch FROM coalesce(finished_at, now()) - created_at)::float8 AS seconds
FROM hop;
