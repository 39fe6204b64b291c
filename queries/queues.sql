-- name: QueueCreate :exec
INSERT INTO baton.queues (name) VALUES (@name::text) ON CONFLICT DO NOTHING;

-- name: QueuePause :one
-- Pauses or resumes a queue (creating it if new); workers on every replica
-- stop claiming from it at their next poll, and a resume wakes them at once
-- with a hint naming the queue.
WITH changed AS (
    INSERT INTO baton.queues (name, paused) VALUES (@name::text, @paused::boolean)
    ON CONFLICT (name) DO UPDATE SET paused = excluded.paused
    RETURNING name, paused
), notified AS (
    SELECT count(pg_notify('baton_jobs', name)) AS n FROM changed WHERE NOT paused
)
SELECT name, paused FROM changed CROSS JOIN notified;

-- name: QueueSummary :many
SELECT queue::text AS queue,
       scheduled::bigint AS scheduled, available::bigint AS available,
       running::bigint AS running, retrying::bigint AS retrying,
       succeeded::bigint AS succeeded, dead::bigint AS dead, canceled::bigint AS canceled,
       extract(epoch FROM oldest_available_age)::float8 AS oldest_available_seconds,
       q.paused
FROM baton.queue_summary s
JOIN baton.queues q ON q.name = s.queue
ORDER BY queue;
