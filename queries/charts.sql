-- name: ChartMinutes :many
-- The dashboard's charts: the last hour of a queue's attempts (every
-- queue's, when queue is NULL), a row for each of its 60 minutes, the
-- current one last: successes, failures (attempts whose handler returned an
-- error), and the p95 of the wait before each claim and of each handler run,
-- as baton.attempts counts them. The BRIN indexes on job_events.at and
-- jobs.finished_at find the hour's rows: the older history is not read.
WITH minutes AS (
    SELECT generate_series(date_trunc('minute', now()) - interval '59 minutes', date_trunc('minute', now()),
                           interval '1 minute') AS minute
), ended AS (
    SELECT e.at, e.to_state, e.run_us, e.claimed_at, e.due_at
    FROM baton.job_events e
    WHERE e.at >= date_trunc('minute', now()) - interval '59 minutes'
      AND e.from_state = 'running' AND e.due_at IS NOT NULL
      AND (sqlc.narg('queue')::text IS NULL
           OR EXISTS (SELECT FROM baton.jobs j WHERE j.id = e.job_id AND j.queue = sqlc.narg('queue')::text))
    UNION ALL
    -- the successes the jobs' rows record (migration 28)
    SELECT j.finished_at, j.state, j.run_us, j.started_at, j.run_at
    FROM baton.jobs j
    WHERE j.finished_at >= date_trunc('minute', now()) - interval '59 minutes'
      AND j.state = 'succeeded' AND j.completed_by IS NOT NULL
      AND (sqlc.narg('queue')::text IS NULL OR j.queue = sqlc.narg('queue')::text)
), attempts AS (
    SELECT date_trunc('minute', e.at) AS minute,
           count(*) FILTER (WHERE e.to_state = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE e.to_state IN ('retrying', 'dead') AND e.run_us IS NOT NULL) AS failed,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM e.claimed_at - e.due_at)) AS wait_p95,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY e.run_us) AS run_p95_us
    FROM ended e
    GROUP BY 1
)
SELECT m.minute::timestamptz AS minute,
       coalesce(a.succeeded, 0)::bigint AS succeeded,
       coalesce(a.failed, 0)::bigint AS failed,
       coalesce(a.wait_p95, 0)::float8 AS wait_p95_seconds,
       coalesce(a.run_p95_us / 1e6, 0)::float8 AS run_p95_seconds
FROM minutes m
LEFT JOIN attempts a USING (minute)
ORDER BY m.minute;
