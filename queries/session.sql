-- name: BackendPid :one
-- The server process behind this connection: through a transaction pooler,
-- it changes between transactions (behindTransactionPooler).
SELECT pg_backend_pid()::integer AS pid;
