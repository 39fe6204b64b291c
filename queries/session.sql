-- name: BackendPid :one
-- The server process behind this connection: through a transaction pooler,
-- it changes between transactions (behindTransactionPooler).
SELECT pg_backend_pid()::integer AS pid;

-- name: SeqScansOff :exec
-- Turns sequential scans off for the rest of the transaction: a claim's
-- that cannot go through genericRows (a limited claim's, worker
-- holdingQueue, and an isolated claim's), whose statements plan as its do
-- (the waiting jobs' table looks small to the planner while claims keep
-- up, and a plan that scans it reads every dead row under a held horizon).
SELECT set_config('enable_seqscan', 'off', true);
