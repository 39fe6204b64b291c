-- name: QueueCreate :exec
INSERT INTO baton.queues (name) VALUES (@name::text) ON CONFLICT DO NOTHING;

-- name: QueueHoldForClaim :one
-- Holds a queue's row for the claim that follows in the same transaction,
-- so that claims of a limited queue take turns: each counts the running jobs
-- after the one before it committed. NO KEY UPDATE leaves submits and
-- hand-offs into the queue alone. Returns the queue's own limits (0 for
-- none) and, under a rate (the queue's, else the stage's rate_count per
-- rate_period_ms), the claims its bucket holds now: it fills at the rate
-- up to one second's worth (at least one claim); -1 without a rate.
-- QueueSpendTokens writes back what the claim left.
SELECT coalesce(q.global_concurrency, 0)::integer AS global_concurrency,
       coalesce(q.rate_count, 0)::integer AS rate_count, coalesce(q.rate_period_ms, 0)::integer AS rate_period_ms,
       baton.rate_tokens(coalesce(q.rate_count, nullif(@rate_count::integer, 0)),
                         coalesce(q.rate_period_ms, nullif(@rate_period_ms::integer, 0)), q.rate_tokens, q.rate_at) AS tokens
FROM baton.queues q
WHERE q.name = @name::text
FOR NO KEY UPDATE OF q;

-- name: QueueSpendTokens :exec
-- Writes back a rate-limited queue's bucket after a claim, in the claim's
-- transaction (the row is held): tokens is what QueueHoldForClaim returned
-- less the jobs claimed, as of the transaction's time.
UPDATE baton.queues SET rate_tokens = @tokens::float8, rate_at = now() WHERE name = @name::text;

-- name: QueueLimit :one
-- The queue's own global concurrency and rate (0 for none), which win over
-- a stage's: a worker reads them every poll interval, to learn of those set
-- at run time.
SELECT coalesce(global_concurrency, 0)::integer AS global_concurrency,
       coalesce(rate_count, 0)::integer AS rate_count, coalesce(rate_period_ms, 0)::integer AS rate_period_ms
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
       q.paused, q.retain_succeeded_ms, q.retain_dead_ms, q.retain_canceled_ms, q.global_concurrency, q.max_backlog, q.rate_count, q.rate_period_ms
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
-- Rate: NULL the stages' own, else rate_count claims per rate_period_ms.
INSERT INTO baton.queues (name, retain_succeeded_ms, retain_dead_ms, retain_canceled_ms, global_concurrency, max_backlog,
                          rate_count, rate_period_ms)
VALUES (@name::text, sqlc.narg('succeeded_ms')::bigint, sqlc.narg('dead_ms')::bigint, sqlc.narg('canceled_ms')::bigint,
        sqlc.narg('global_concurrency')::integer, sqlc.narg('max_backlog')::integer,
        sqlc.narg('rate_count')::integer, sqlc.narg('rate_period_ms')::integer)
ON CONFLICT (name) DO UPDATE
SET retain_succeeded_ms = CASE WHEN @set_succeeded::boolean THEN excluded.retain_succeeded_ms ELSE baton.queues.retain_succeeded_ms END,
    retain_dead_ms = CASE WHEN @set_dead::boolean THEN excluded.retain_dead_ms ELSE baton.queues.retain_dead_ms END,
    retain_canceled_ms = CASE WHEN @set_canceled::boolean THEN excluded.retain_canceled_ms ELSE baton.queues.retain_canceled_ms END,
    global_concurrency = CASE WHEN @set_global_concurrency::boolean THEN excluded.global_concurrency ELSE baton.queues.global_concurrency END,
    max_backlog = CASE WHEN @set_max_backlog::boolean THEN excluded.max_backlog ELSE baton.queues.max_backlog END,
    rate_count = CASE WHEN @set_rate::boolean THEN excluded.rate_count ELSE baton.queues.rate_count END,
    rate_period_ms = CASE WHEN @set_rate::boolean THEN excluded.rate_period_ms ELSE baton.queues.rate_period_ms END
RETURNING name, paused, retain_succeeded_ms, retain_dead_ms, retain_canceled_ms, global_concurrency, max_backlog,
          rate_count, rate_period_ms;

-- name: QueueGroupWeight :one
-- Sets a group's weight in a queue's fair shares (NULL: back to 1, the
-- default), creating the queue if new; returns the weight now in force.
WITH queue AS (
    INSERT INTO baton.queues (name) VALUES (@queue::text) ON CONFLICT DO NOTHING
), set AS (
    INSERT INTO baton.queue_groups (queue, group_key, weight)
    VALUES (@queue::text, @group_key::text, sqlc.narg('weight')::integer)
    ON CONFLICT (queue, group_key) DO UPDATE SET weight = excluded.weight
    RETURNING weight
)
SELECT coalesce((SELECT weight FROM set), 1)::integer AS weight;

-- name: QueueGroupsPrune :execrows
-- Deletes the fair-share rows that say nothing a missing row would not: no
-- weight, and a tag the queue's clock has passed (a group that comes back
-- starts at the clock either way).
DELETE FROM baton.queue_groups g
USING baton.queues q
WHERE g.queue = q.name AND g.weight IS NULL AND g.next_tag <= q.fair_clock;
