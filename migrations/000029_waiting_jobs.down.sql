-- Puts back the claim index on baton.jobs and the views of migrations 8 and
-- 21 that read it, then drops the waiting jobs' table and its triggers.
CREATE INDEX jobs_claim_idx ON baton.jobs (queue, priority, run_at, id)
    WHERE state IN ('scheduled', 'available', 'retrying');

CREATE OR REPLACE VIEW baton.queue_summary AS
SELECT q.name AS queue,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'scheduled'), 0)::bigint AS scheduled,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'available'), 0)::bigint AS available,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'running'), 0)::bigint   AS running,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'retrying'), 0)::bigint  AS retrying,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'succeeded'), 0)::bigint AS succeeded,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'dead'), 0)::bigint      AS dead,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'canceled'), 0)::bigint  AS canceled,
       coalesce((SELECT now() - min(greatest(j.run_at, timestamptz '0001-01-01 00:00:00+00'))
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

CREATE OR REPLACE VIEW baton.backlog_by_priority AS
SELECT queue, priority,
       count(*) FILTER (WHERE run_at <= now()) AS due_jobs,
       coalesce(extract(epoch FROM now() - min(greatest(run_at, timestamptz '0001-01-01 00:00:00+00'))
                FILTER (WHERE run_at <= now())), 0)::float8 AS oldest_due_seconds,
       count(*) FILTER (WHERE run_at > now()) AS later_jobs
FROM baton.jobs
WHERE state IN ('scheduled', 'available', 'retrying')
  AND (baton.report_tag() IS NULL OR tags @> ARRAY[baton.report_tag()])
GROUP BY queue, priority;

CREATE OR REPLACE VIEW baton.stuck_jobs AS
SELECT j.id, j.queue, j.state, 'lease expired' AS reason,
       extract(epoch FROM now() - j.lease_expires_at)::float8 AS overdue_seconds, j.attempts, j.leased_by
FROM baton.jobs j
WHERE j.state = 'running' AND j.lease_expires_at < now()
  AND (baton.report_tag() IS NULL OR j.tags @> ARRAY[baton.report_tag()])
UNION ALL
SELECT j.id, j.queue, j.state, 'not claimed',
       extract(epoch FROM now() - j.run_at)::float8, j.attempts, j.leased_by
FROM baton.jobs j
WHERE j.state IN ('scheduled', 'available', 'retrying') AND j.run_at < now() - interval '1 minute'
  AND (baton.report_tag() IS NULL OR j.tags @> ARRAY[baton.report_tag()]);

DROP TRIGGER jobs_wait_insert ON baton.jobs;
DROP TRIGGER jobs_wait_update ON baton.jobs;
DROP TRIGGER jobs_wait_delete ON baton.jobs;
DROP TRIGGER jobs_wait_truncate ON baton.jobs;
DROP FUNCTION baton.wait_inserted_jobs();
DROP FUNCTION baton.wait_changed_job();
DROP FUNCTION baton.wait_truncated_jobs();
DROP TABLE baton.waiting_jobs;

CREATE OR REPLACE FUNCTION baton.compatible_since() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 22';
