-- name: IdempotencyTryLock :one
-- Taken for the transaction that uses a key; false means another request
-- with the same key is in flight.
SELECT pg_try_advisory_xact_lock(hashtextextended(@key::text, 727274)) AS locked;

-- name: IdempotencyGet :one
-- A key's earlier use within the last 24 hours.
SELECT fingerprint, job_ids::bigint[] AS job_ids
FROM baton.idempotency_keys
WHERE key = @key::text AND created_at > now() - interval '24 hours';

-- name: IdempotencyPut :exec
INSERT INTO baton.idempotency_keys (key, fingerprint, job_ids)
VALUES (@key::text, @fingerprint::bytea, @job_ids::bigint[])
ON CONFLICT (key) DO UPDATE
SET fingerprint = excluded.fingerprint, job_ids = excluded.job_ids, created_at = now();

-- name: IdempotencyPrune :execrows
DELETE FROM baton.idempotency_keys WHERE created_at < now() - interval '24 hours';
