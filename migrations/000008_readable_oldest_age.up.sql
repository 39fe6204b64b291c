-- queue_summary's oldest_available_age subtracts the oldest due run_at from
-- now(). A run_at of -infinity (only SQL run by hand can store one) made
-- that subtraction fail, and with it the queue list, the dashboard's home
-- page and /metrics. Such a job now counts as due since 0001-01-01 (inside
-- min(): greatest() would turn "no due job", a NULL, into that date too).
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
