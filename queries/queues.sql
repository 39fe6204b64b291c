-- name: QueueConfigure :exec
-- Creates a queue or records the max_attempts its stage runs with, so that
-- jobs submitted without one get the stage's setting.
INSERT INTO baton.queues (name, max_attempts)
VALUES (@name::text, @max_attempts::integer)
ON CONFLICT (name) DO UPDATE SET max_attempts = excluded.max_attempts
WHERE baton.queues.max_attempts IS DISTINCT FROM excluded.max_attempts;

-- name: QueueSummary :many
SELECT queue::text AS queue,
       scheduled::bigint AS scheduled, available::bigint AS available,
       running::bigint AS running, retrying::bigint AS retrying,
       succeeded::bigint AS succeeded, dead::bigint AS dead, canceled::bigint AS canceled,
       extract(epoch FROM oldest_available_age)::float8 AS oldest_available_seconds
FROM baton.queue_summary
ORDER BY queue;
