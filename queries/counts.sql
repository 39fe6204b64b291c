-- Per-queue, per-state job counts (migration 3): triggers append deltas,
-- maintenance folds them.

-- name: JobCountsFold :execrows
-- Folds the per-statement count deltas into baton.job_counts. Safe from every
-- replica at once: a delta row is deleted (and so counted) by one fold only,
-- and counters are updated in a fixed order.
WITH moved AS (
    DELETE FROM baton.job_count_deltas RETURNING queue, state, n
)
INSERT INTO baton.job_counts AS c (queue, state, n)
SELECT queue, state, sum(n)::bigint FROM moved GROUP BY queue, state ORDER BY queue, state
ON CONFLICT (queue, state) DO UPDATE SET n = c.n + excluded.n;
