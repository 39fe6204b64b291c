-- name: RetentionTryLock :one
-- Taken for the transaction that prunes: one replica prunes at a time, and
-- the others pass (transaction-scoped, so it works through PgBouncer too).
SELECT pg_try_advisory_xact_lock(hashtextextended('baton prune', 727274)) AS locked;

-- name: JobPrune :one
-- Deletes up to max_jobs finished jobs that have been finished longer than
-- their queue keeps them, with their history rows, in one statement. Each
-- final state's retention is the queue's override (retain_*_ms), else the
-- given default; -1 keeps forever. Only succeeded, dead and canceled jobs are
-- looked at: a running or waiting job is never pruned. SKIP LOCKED passes
-- over a job that a re-drive holds. The count triggers keep queue_summary
-- exact, and a job handed off from a pruned one keeps its parent_id.
WITH policy AS (
    SELECT q.name,
           coalesce(q.retain_succeeded_ms, @succeeded_ms::bigint) AS succeeded_ms,
           coalesce(q.retain_dead_ms, @dead_ms::bigint) AS dead_ms,
           coalesce(q.retain_canceled_ms, @canceled_ms::bigint) AS canceled_ms
    FROM baton.queues q
), doomed AS MATERIALIZED (
    SELECT j.id
    FROM baton.jobs j
    JOIN policy p ON p.name = j.queue
    WHERE j.state IN ('succeeded', 'dead', 'canceled')
      -- The shortest retention of all bounds the scan (the BRIN index on finished_at).
      AND j.finished_at < now() - interval '1 millisecond' * (
          SELECT min(ms) FROM policy, LATERAL (VALUES (succeeded_ms), (dead_ms), (canceled_ms)) r(ms) WHERE ms >= 0)
      AND j.finished_at < now() - interval '1 millisecond' * CASE j.state
              WHEN 'succeeded' THEN p.succeeded_ms WHEN 'dead' THEN p.dead_ms ELSE p.canceled_ms END
      AND CASE j.state WHEN 'succeeded' THEN p.succeeded_ms WHEN 'dead' THEN p.dead_ms ELSE p.canceled_ms END >= 0
    LIMIT @max_jobs::integer
    FOR UPDATE OF j SKIP LOCKED
), pruned AS (
    DELETE FROM baton.jobs j USING doomed d WHERE j.id = d.id RETURNING j.id
), history AS (
    DELETE FROM baton.job_events e USING pruned p WHERE e.job_id = p.id
)
SELECT count(*)::bigint AS pruned FROM pruned;
