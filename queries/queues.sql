-- name: QueueCreate :exec
INSERT INTO baton.queues (name) VALUES (@name::text) ON CONFLICT DO NOTHING;

-- name: QueueSummary :many
SELECT queue::text AS queue,
       scheduled::bigint AS scheduled, available::bigint AS available,
       running::bigint AS running, retrying::bigint AS retrying,
       succeeded::bigint AS succeeded, dead::bigint AS dead, canceled::bigint AS canceled,
       extract(epoch FROM oldest_available_age)::float8 AS oldest_available_seconds
FROM baton.queue_summary
ORDER BY queue;
