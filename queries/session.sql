-- name: BackendPid :one
-- The server process behind this connection: through a transaction pooler,
-- it changes between transactions (db.BehindTransactionPooler).
SELECT pg_backend_pid()::integer AS pid;
