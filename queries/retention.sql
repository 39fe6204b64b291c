-- name: JobPrune :one
-- Deletes up to max_jobs finished jobs that have been finished longer than
-- their queue keeps them, with their history rows, in one statement. Each
-- final state's retention is the queue's override (retain_*_ms), else the
-- given default; -1 keeps forever. For each queue and final state, the jobs
-- past its cutoff are read oldest first from jobs_finished_idx, so a prune
-- reads only what it deletes. Only succeeded, dead and canceled jobs are
-- looked at: a running or waiting job is never pruned. SKIP LOCKED passes
-- over a job that a re-drive or another replica's prune holds, so replicas
-- prune side by side, each its own batch. The count triggers keep queue_summary
-- exact, and a job handed off from a pruned one keeps its parent_id. The
-- jobs' history, faults, snoozes, waiting fan-outs and tags go with them.
WITH retention AS (
    SELECT q.name, 'succeeded'::baton.job_state AS state, coalesce(q.retain_succeeded_ms, @succeeded_ms::bigint) AS ms FROM baton.queues q
    UNION ALL
    SELECT q.name, 'dead'::baton.job_state, coalesce(q.retain_dead_ms, @dead_ms::bigint) FROM baton.queues q
    UNION ALL
    SELECT q.name, 'canceled'::baton.job_state, coalesce(q.retain_canceled_ms, @canceled_ms::bigint) FROM baton.queues q
), policy AS (
    SELECT name, state, now() - interval '1 millisecond' * ms AS cutoff FROM retention WHERE ms >= 0
), doomed AS MATERIALIZED (
    SELECT d.id
    FROM policy p
    CROSS JOIN LATERAL (
        SELECT j.id
        FROM baton.jobs j
        WHERE j.queue = p.name
          AND j.state = p.state
          AND j.state IN ('succeeded', 'dead', 'canceled') -- the index's predicate, for the planner
          AND j.finished_at < p.cutoff
        ORDER BY j.finished_at
        LIMIT @max_jobs::integer
        FOR UPDATE OF j SKIP LOCKED
    ) d
    LIMIT @max_jobs::integer
), pruned AS (
    -- The ids as one array, as in JobClaim: every plan, a generic one too,
    -- then deletes through the primary key, never by a join on a scan.
    DELETE FROM baton.jobs j WHERE j.id = ANY (ARRAY(SELECT id FROM doomed)) RETURNING j.id, j.tags
), tags AS (
    DELETE FROM baton.job_tags t USING (SELECT id, unnest(tags) AS tag FROM pruned) p
    WHERE t.tag = p.tag AND t.job_id = p.id
), history AS (
    DELETE FROM baton.job_events e WHERE e.job_id = ANY (ARRAY(SELECT id FROM pruned))
), faults AS (
    DELETE FROM baton.job_faults f WHERE f.job_id = ANY (ARRAY(SELECT id FROM pruned))
), snoozes AS (
    DELETE FROM baton.job_snoozes s WHERE s.job_id = ANY (ARRAY(SELECT id FROM pruned))
), fan_outs AS (
    DELETE FROM baton.fan_outs f WHERE f.parent_id = ANY (ARRAY(SELECT id FROM pruned))
)
SELECT count(*)::bigint AS pruned FROM pruned;
