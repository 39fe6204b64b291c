-- name: QueueCreate :exec
INSERT INTO baton.queues (name) VALUES (@name::text) ON CONFLICT DO NOTHING;

-- name: QueueHoldForClaim :one
-- Holds a queue's row for the claim that follows in the same transaction,
-- so that claims of a queue with a global concurrency take turns: each
-- counts the running jobs after the one before it committed. NO KEY UPDATE
-- leaves submits and hand-offs into the queue alone. Returns the queue's own
-- limit (0 for none).
SELECT coalesce(global_concurrency, 0)::integer AS global_concurrency
FROM baton.queues WHERE name = @name::text
FOR NO KEY UPDATE;

-- name: QueueLimit :one
-- The queue's own global concurrency (0 for none), which wins over a stage's:
-- a worker reads it every poll interval, to learn of one set at run time.
SELECT coalesce(global_concurrency, 0)::integer AS global_concurrency
FROM baton.queues WHERE name = @name::text;

-- name: QueuePause :one
-- Pauses or resumes a queue that exists (no row for another: a pause of any
-- name made a queue, and 5,000 of them a 4.6 MB dashboard page); workers on
-- every replica stop claiming from it at their next poll, and a resume wakes
-- them at once with a hint naming the queue.
WITH changed AS (
    UPDATE baton.queues SET paused = @paused::boolean WHERE name = @name::text
    RETURNING name, paused
), notified AS (
    SELECT count(pg_notify('baton_jobs', name)) AS n FROM changed WHERE NOT paused
)
SELECT name, paused FROM changed CROSS JOIN notified;

-- name: QueueSummary :many
-- A page of queues in name order: those after the cursor (after, '' for the
-- first page), at most max_queues; only the one named when only is set.
SELECT queue::text AS queue,
       scheduled::bigint AS scheduled, available::bigint AS available,
       running::bigint AS running, retrying::bigint AS retrying,
       succeeded::bigint AS succeeded, dead::bigint AS dead, canceled::bigint AS canceled,
       extract(epoch FROM oldest_available_age)::float8 AS oldest_available_seconds,
       q.paused, q.retain_succeeded_ms, q.retain_dead_ms, q.retain_canceled_ms, q.global_concurrency, q.max_backlog
FROM baton.queue_summary s
JOIN baton.queues q ON q.name = s.queue
WHERE s.queue > @after::text
  AND (sqlc.narg('only')::text IS NULL OR s.queue = sqlc.narg('only')::text)
ORDER BY queue
LIMIT @max_queues::integer;

-- name: JobCountTotals :one
-- Jobs by state over every queue, from the counters: the dashboard's cards,
-- whatever page of queues it shows.
SELECT coalesce(sum(n) FILTER (WHERE state IN ('scheduled', 'available', 'retrying')), 0)::bigint AS waiting,
       coalesce(sum(n) FILTER (WHERE state = 'running'), 0)::bigint AS running,
       coalesce(sum(n) FILTER (WHERE state = 'succeeded'), 0)::bigint AS succeeded,
       coalesce(sum(n) FILTER (WHERE state = 'dead'), 0)::bigint AS dead
FROM (SELECT state, n FROM baton.job_counts
      UNION ALL
      SELECT state, n FROM baton.job_count_deltas) c;

-- name: QueueSet :one
-- Sets a queue's settings (creating the queue if new), as a JSON merge patch
-- would: a field not set (set_* false) is left alone, NULL goes back to the
-- default. Retention: NULL the replicas' default, -1 forever, else
-- milliseconds. Global concurrency: NULL the stages' own, else the limit.
-- Max backlog: NULL none, else the most waiting jobs submits may make.
INSERT INTO baton.queues (name, retain_succeeded_ms, retain_dead_ms, retain_canceled_ms, global_concurrency, max_backlog)
VALUES (@name::text, sqlc.narg('succeeded_ms')::bigint, sqlc.narg('dead_ms')::bigint, sqlc.narg('canceled_ms')::bigint,
        sqlc.narg('global_concurrency')::integer, sqlc.narg('max_backlog')::integer)
ON CONFLICT (name) DO UPDATE
SET retain_succeeded_ms = CASE WHEN @set_succeeded::boolean THEN excluded.retain_succeeded_ms ELSE baton.queues.retain_succeeded_ms END,
    retain_dead_ms = CASE WHEN @set_dead::boolean THEN excluded.retain_dead_ms ELSE baton.queues.retain_dead_ms END,
    retain_canceled_ms = CASE WHEN @set_canceled::boolean THEN excluded.retain_canceled_ms ELSE baton.queues.retain_canceled_ms END,
    global_concurrency = CASE WHEN @set_global_concurrency::boolean THEN excluded.global_concurrency ELSE baton.queues.global_concurrency END,
    max_backlog = CASE WHEN @set_max_backlog::boolean THEN excluded.max_backlog ELSE baton.queues.max_backlog END
RETURNING name, paused, retain_succeeded_ms, retain_dead_ms, retain_canceled_ms, global_concurrency, max_backlog;
