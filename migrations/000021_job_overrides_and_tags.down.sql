-- The views as they were before migration 21, then its tables and columns.

DROP VIEW baton.job_history;
CREATE VIEW baton.job_history AS
SELECT job_id,
       (row_number() OVER w)::integer AS seq,
       at,
       (CASE WHEN implied_claim THEN lag(to_state) OVER w ELSE from_state END)::baton.job_state AS from_state,
       to_state, attempt, lease_token, worker, error,
       (run_us / 1e6)::float8 AS run_seconds
FROM (
    SELECT e.job_id, e.at, e.from_state, e.to_state, e.attempt, e.lease_token, e.worker, e.error, e.run_us,
           false AS implied_claim, 1 AS part, e.id AS ord, 1 AS sub
    FROM baton.job_events e
    UNION ALL
    -- the claim of each attempt that has ended
    SELECT e.job_id, e.claimed_at, NULL, 'running', e.attempt, e.lease_token, e.worker, NULL, NULL,
           true, 1, e.id, 0
    FROM baton.job_events e
    WHERE e.claimed_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM baton.job_events c
                      WHERE c.job_id = e.job_id AND c.to_state = 'running' AND c.lease_token = e.lease_token)
    UNION ALL
    -- the claim of the attempt running now
    SELECT j.id, j.started_at, NULL, 'running', j.attempts, j.lease_token, j.leased_by, NULL, NULL,
           true, 2, 0, 0
    FROM baton.jobs j
    WHERE j.state = 'running'
      AND NOT EXISTS (SELECT 1 FROM baton.job_events c
                      WHERE c.job_id = j.id AND c.to_state = 'running' AND c.lease_token = j.lease_token)
    UNION ALL
    -- the creation of a handed-off job
    SELECT j.id, j.created_at, NULL, 'available', 0, 0, NULL, NULL, NULL,
           false, 0, 0, 0
    FROM baton.jobs j
    WHERE j.parent_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM baton.job_events c WHERE c.job_id = j.id AND c.from_state IS NULL)
) entries
WINDOW w AS (PARTITION BY job_id ORDER BY part, ord, sub);

DROP VIEW baton.jobs_readable;
CREATE VIEW baton.jobs_readable AS
SELECT id, queue, state, baton.readable(payload) AS payload, priority, run_at, attempts, max_attempts,
       lease_token, lease_expires_at, leased_by, last_error, baton.readable(result) AS result, parent_id,
       parent_seq, created_at, started_at, finished_at, trace_parent, lost_leases, isolated, alone_since,
       root_id, root_created_at
FROM baton.jobs;
COMMENT ON VIEW baton.jobs_readable IS
    'baton.jobs with payload and result NULL where they cannot be read (baton.readable).';

CREATE OR REPLACE VIEW baton.attempts AS
SELECT e.job_id, j.queue, e.attempt, e.worker,
       (CASE WHEN e.to_state = 'succeeded' THEN 'succeeded'
             WHEN e.to_state = 'canceled' THEN 'canceled'
             WHEN e.to_state IN ('scheduled', 'available') AND e.error LIKE 'snoozed %' THEN 'snoozed' -- JobSnooze
             WHEN e.run_us IS NOT NULL THEN 'failed' -- only JobFail, after a handler returned, records one
             WHEN e.error LIKE 'lease expired%' THEN 'lease_lost' -- the reaper's words (JobReap)
             ELSE 'released' END)::text AS outcome,
       e.to_state, e.due_at, e.claimed_at, e.at AS ended_at,
       extract(epoch FROM e.claimed_at - e.due_at)::float8 AS wait_seconds,
       (e.run_us / 1e6)::float8 AS run_seconds,
       (CASE WHEN e.to_state = 'succeeded' AND (j.parent_id IS NULL OR j.root_created_at IS NOT NULL)
             THEN extract(epoch FROM e.at - coalesce(j.root_created_at, j.created_at)) END)::float8 AS e2e_seconds,
       e.error
FROM baton.job_events e
CROSS JOIN LATERAL (
    -- One primary-key probe per history row, so that a report reads as much
    -- of jobs as its window holds, never the whole table. (OFFSET 0 keeps
    -- the planner from making this a join that scans jobs: it cannot see
    -- through report_since() and guesses a third of the history.)
    SELECT queue, parent_id, root_created_at, created_at FROM baton.jobs WHERE id = e.job_id OFFSET 0
) j
WHERE e.from_state = 'running' AND e.due_at IS NOT NULL;

CREATE OR REPLACE VIEW baton.throughput_hourly AS
SELECT j.queue, date_trunc('hour', e.at)::timestamptz AS hour,
       count(*) FILTER (WHERE e.to_state = 'succeeded') AS successes,
       count(*) FILTER (WHERE e.to_state = 'retrying') AS retries,
       count(*) FILTER (WHERE e.to_state = 'dead') AS deaths,
       count(*) FILTER (WHERE e.to_state = 'canceled') AS cancels,
       count(*) FILTER (WHERE e.to_state = 'available' AND e.from_state = 'running'
                          AND coalesce(e.error, '') NOT LIKE 'snoozed %') AS interruptions,
       count(*) FILTER (WHERE e.to_state = 'available' AND e.from_state IN ('dead', 'canceled')) AS redrives,
       count(*) FILTER (WHERE e.from_state = 'running' AND e.error LIKE 'snoozed %') AS snoozes
FROM baton.job_events e
CROSS JOIN LATERAL (SELECT queue FROM baton.jobs WHERE id = e.job_id OFFSET 0) j -- as in attempts
WHERE e.at >= baton.report_since(interval '24 hours')
  AND (e.to_state IN ('succeeded', 'retrying', 'dead', 'canceled')
       OR (e.to_state = 'available' AND e.from_state IN ('running', 'dead', 'canceled'))
       OR (e.to_state = 'scheduled' AND e.from_state = 'running'))
GROUP BY 1, 2;

CREATE OR REPLACE VIEW baton.failures AS
SELECT j.queue, e.error,
       count(*) AS attempts,
       count(DISTINCT e.job_id) AS jobs,
       count(*) FILTER (WHERE e.to_state = 'dead') AS deaths,
       min(e.at)::timestamptz AS first_seen,
       max(e.at)::timestamptz AS last_seen,
       ((array_agg(e.job_id ORDER BY e.at DESC))[1])::bigint AS last_job_id
FROM baton.job_events e
CROSS JOIN LATERAL (SELECT queue FROM baton.jobs WHERE id = e.job_id OFFSET 0) j -- as in attempts
WHERE e.at >= baton.report_since(interval '24 hours') AND e.error IS NOT NULL
  AND NOT (e.from_state = 'running' AND e.to_state IN ('scheduled', 'available') AND e.error LIKE 'snoozed %')
GROUP BY j.queue, e.error;

CREATE OR REPLACE VIEW baton.stuck_jobs AS
SELECT j.id, j.queue, j.state, 'lease expired' AS reason,
       extract(epoch FROM now() - j.lease_expires_at)::float8 AS overdue_seconds, j.attempts, j.leased_by
FROM baton.jobs j
WHERE j.state = 'running' AND j.lease_expires_at < now()
UNION ALL
SELECT j.id, j.queue, j.state, 'not claimed',
       extract(epoch FROM now() - j.run_at)::float8, j.attempts, j.leased_by
FROM baton.jobs j
WHERE j.state IN ('scheduled', 'available', 'retrying') AND j.run_at < now() - interval '1 minute';

CREATE OR REPLACE VIEW baton.pipeline_lineage AS
WITH RECURSIVE hop AS (
    SELECT j.id AS root_id, 0 AS depth, j.id, j.parent_id, j.queue, j.state, j.attempts,
           j.created_at, j.started_at, j.finished_at
    FROM baton.jobs j
    WHERE j.created_at >= baton.report_since(interval '1 hour') AND j.parent_id IS NULL
    UNION ALL
    SELECT h.root_id, h.depth + 1, c.id, c.parent_id, c.queue, c.state, c.attempts,
           c.created_at, c.started_at, c.finished_at
    FROM hop h
    CROSS JOIN LATERAL (SELECT id, parent_id, queue, state, attempts, created_at, started_at, finished_at
                        FROM baton.jobs WHERE parent_id = h.id OFFSET 0) c
    WHERE h.depth < 100
)
SELECT root_id, depth, id AS job_id, parent_id, queue, state, attempts, created_at, started_at, finished_at,
       extract(epoch FROM coalesce(finished_at, now()) - created_at)::float8 AS seconds
FROM hop;

CREATE OR REPLACE VIEW baton.attempts_per_job AS
SELECT queue, attempts,
       count(*) AS jobs,
       count(*) FILTER (WHERE state = 'succeeded') AS succeeded_jobs,
       count(*) FILTER (WHERE state = 'dead') AS dead_jobs,
       (count(*)::float8 / sum(count(*)) OVER (PARTITION BY queue))::float8 AS share
FROM baton.jobs
WHERE finished_at >= baton.report_since(interval '24 hours') AND state IN ('succeeded', 'dead')
GROUP BY queue, attempts;

CREATE OR REPLACE VIEW baton.slowest_journeys AS
WITH RECURSIVE ended AS (
    SELECT j.id, CASE WHEN j.parent_id IS NULL THEN j.id ELSE j.root_id END AS root_id,
           coalesce(j.root_created_at, j.created_at) AS submitted_at, j.finished_at, j.queue, j.state
    FROM baton.jobs j
    WHERE j.finished_at >= baton.report_since(interval '1 hour')
      AND j.state IN ('succeeded', 'dead', 'canceled')
      AND (j.parent_id IS NULL OR j.root_id IS NOT NULL)
      -- a probe of the hand-off index per job (OFFSET 0: never a join that
      -- reads the whole index)
      AND NOT EXISTS (SELECT 1 FROM baton.jobs c WHERE c.parent_id = j.id OFFSET 0)
    ORDER BY j.finished_at - coalesce(j.root_created_at, j.created_at) DESC, j.id
    LIMIT 100
), path AS (
    SELECT e.id AS end_id, j.id, j.parent_id, j.queue, j.state, j.created_at, j.finished_at, 0 AS up
    FROM ended e JOIN baton.jobs j ON j.id = e.id
    UNION ALL
    SELECT p.end_id, j.id, j.parent_id, j.queue, j.state, j.created_at, j.finished_at, p.up + 1
    FROM path p JOIN baton.jobs j ON j.id = p.parent_id
    WHERE p.up < 100
)
SELECT e.root_id::bigint AS root_id, e.id AS job_id, e.queue, e.state, e.submitted_at, e.finished_at,
       extract(epoch FROM e.finished_at - e.submitted_at)::float8 AS seconds,
       (SELECT count(*) FROM path p WHERE p.end_id = e.id) AS hops,
       (SELECT string_agg(p.queue || ' ' || to_char(extract(epoch FROM p.finished_at - p.created_at), 'FM999999990.000') || 's'
                          || CASE WHEN p.state <> 'succeeded' THEN ' (' || p.state || ')' ELSE '' END,
                          ' -> ' ORDER BY p.up DESC)
        FROM path p WHERE p.end_id = e.id)::text AS stages
FROM ended e;

CREATE OR REPLACE VIEW baton.backlog_by_priority AS
SELECT queue, priority,
       count(*) FILTER (WHERE run_at <= now()) AS due_jobs,
       coalesce(extract(epoch FROM now() - min(greatest(run_at, timestamptz '0001-01-01 00:00:00+00'))
                FILTER (WHERE run_at <= now())), 0)::float8 AS oldest_due_seconds,
       count(*) FILTER (WHERE run_at > now()) AS later_jobs
FROM baton.jobs
WHERE state IN ('scheduled', 'available', 'retrying')
GROUP BY queue, priority;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'baton_reader') THEN
        GRANT SELECT ON baton.job_history TO baton_reader;
    END IF;
END $$;
DROP FUNCTION baton.report_tag();
ALTER TABLE baton.job_events DROP COLUMN note;
DROP TABLE baton.job_tags;
ALTER TABLE baton.jobs DROP COLUMN tags, DROP COLUMN timeout_ms, DROP COLUMN lease_ms;
