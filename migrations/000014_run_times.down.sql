-- Back to the reports of migration 3 and the history of migration 7.
DROP VIEW baton.worker_activity, baton.backlog_by_priority, baton.slowest_journeys,
    baton.attempts_per_job, baton.stage_errors;

DROP VIEW baton.stage_latency;
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

DROP VIEW baton.throughput_hourly;
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

DROP VIEW baton.failures;
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

DROP VIEW baton.attempts;

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
    JOIN baton.jobs c ON c.parent_id = h.id
    WHERE h.depth < 100
)
SELECT root_id, depth, id AS job_id, parent_id, queue, state, attempts, created_at, started_at, finished_at,
       extract(epoch FROM coalesce(finished_at, now()) - created_at)::float8 AS seconds
FROM hop;

-- job_history without run times (a view's columns cannot be dropped in place).
DROP VIEW baton.job_history;
CREATE VIEW baton.job_history AS
SELECT job_id,
       (row_number() OVER w)::integer AS seq,
       at,
       (CASE WHEN implied_claim THEN lag(to_state) OVER w ELSE from_state END)::baton.job_state AS from_state,
       to_state, attempt, lease_token, worker, error
FROM (
    SELECT e.job_id, e.at, e.from_state, e.to_state, e.attempt, e.lease_token, e.worker, e.error,
           false AS implied_claim, 1 AS part, e.id AS ord, 1 AS sub
    FROM baton.job_events e
    UNION ALL
    SELECT e.job_id, e.claimed_at, NULL, 'running', e.attempt, e.lease_token, e.worker, NULL,
           true, 1, e.id, 0
    FROM baton.job_events e
    WHERE e.claimed_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM baton.job_events c
                      WHERE c.job_id = e.job_id AND c.to_state = 'running' AND c.lease_token = e.lease_token)
    UNION ALL
    SELECT j.id, j.started_at, NULL, 'running', j.attempts, j.lease_token, j.leased_by, NULL,
           true, 2, 0, 0
    FROM baton.jobs j
    WHERE j.state = 'running'
      AND NOT EXISTS (SELECT 1 FROM baton.job_events c
                      WHERE c.job_id = j.id AND c.to_state = 'running' AND c.lease_token = j.lease_token)
    UNION ALL
    SELECT j.id, j.created_at, NULL, 'available', 0, 0, NULL, NULL,
           false, 0, 0, 0
    FROM baton.jobs j
    WHERE j.parent_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM baton.job_events c WHERE c.job_id = j.id AND c.from_state IS NULL)
) entries
WINDOW w AS (PARTITION BY job_id ORDER BY part, ord, sub);

ALTER TABLE baton.jobs DROP COLUMN root_created_at, DROP COLUMN root_id;
ALTER TABLE baton.job_events DROP COLUMN run_us, DROP COLUMN due_at;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'baton_reader') THEN
        GRANT SELECT ON baton.stage_latency, baton.throughput_hourly, baton.failures, baton.job_history TO baton_reader;
    END IF;
END $$;
