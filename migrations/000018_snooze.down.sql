DROP VIEW baton.throughput_hourly;
CREATE VIEW baton.throughput_hourly AS
SELECT j.queue, date_trunc('hour', e.at)::timestamptz AS hour,
       count(*) FILTER (WHERE e.to_state = 'succeeded') AS successes,
       count(*) FILTER (WHERE e.to_state = 'retrying') AS retries,
       count(*) FILTER (WHERE e.to_state = 'dead') AS deaths,
       count(*) FILTER (WHERE e.to_state = 'canceled') AS cancels,
       count(*) FILTER (WHERE e.to_state = 'available' AND e.from_state = 'running') AS interruptions,
       count(*) FILTER (WHERE e.to_state = 'available' AND e.from_state IN ('dead', 'canceled')) AS redrives
FROM baton.job_events e
CROSS JOIN LATERAL (SELECT queue FROM baton.jobs WHERE id = e.job_id OFFSET 0) j -- as in attempts
WHERE e.at >= baton.report_since(interval '24 hours')
  AND (e.to_state IN ('succeeded', 'retrying', 'dead', 'canceled')
       OR (e.to_state = 'available' AND e.from_state IN ('running', 'dead', 'canceled')))
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
GROUP BY j.queue, e.error;

DROP TABLE baton.job_snoozes;
CREATE OR REPLACE VIEW baton.attempts AS
SELECT e.job_id, j.queue, e.attempt, e.worker,
       (CASE WHEN e.to_state = 'succeeded' THEN 'succeeded'
             WHEN e.to_state = 'canceled' THEN 'canceled'
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
