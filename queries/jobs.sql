-- name: JobInsertMany :many
-- Inserts one or many jobs with their creation events, creating queues on
-- first use, and sends one wake-up hint naming the queues, each with an "@"
-- when some of its new jobs are not due yet (delivered at commit; the one-row
-- notified CTE is joined so that it runs). A zero run_at
-- (0001-01-01) means now() + delay. The new rows come back in input order,
-- with what the database decided (id, state, run_at, created_at), so that a
-- submit's answer needs no read after its commit.
WITH input AS (
    SELECT unnest(@queues::text[]) AS queue,
           unnest(@payloads::text[]) AS payload,
           unnest(@priorities::smallint[]) AS priority,
           unnest(@delays_ms::bigint[]) AS delay_ms,
           nullif(unnest(@run_ats::timestamptz[]), '0001-01-01 00:00:00+00') AS run_at,
           unnest(@max_attempts::integer[]) AS max_attempts,
           nullif(unnest(@trace_parents::text[]), '') AS trace_parent,
           nullif(unnest(@tags::text[]), '')::text[] AS tags,
           nullif(unnest(@timeouts_ms::integer[]), 0) AS timeout_ms,
           nullif(unnest(@leases_ms::integer[]), 0) AS lease_ms,
           nullif(unnest(@groups::text[]), '') AS group_key,
           generate_subscripts(@queues::text[], 1) AS ord
), new_queues AS (
    INSERT INTO baton.queues (name)
    SELECT DISTINCT queue FROM input
    ON CONFLICT DO NOTHING
), admitted AS (
    -- Queues with a max_backlog admit the batch or refuse it whole
    -- (baton.admit raises queue_full); others cost one lookup.
    SELECT baton.admit(c.queue, c.n) AS n
    FROM (SELECT queue, count(*) AS n FROM input GROUP BY queue) c
    JOIN baton.queues q ON q.name = c.queue
    WHERE q.max_backlog IS NOT NULL
), inserted AS (
    INSERT INTO baton.jobs (queue, state, payload, priority, run_at, max_attempts, trace_parent, tags, timeout_ms, lease_ms, group_key)
    SELECT i.queue,
           CASE WHEN coalesce(i.run_at, now() + i.delay_ms * interval '1 millisecond') > now()
                THEN 'scheduled' ELSE 'available' END::baton.job_state,
           i.payload::jsonb,
           i.priority,
           coalesce(i.run_at, now() + i.delay_ms * interval '1 millisecond'),
           nullif(i.max_attempts, 0),
           i.trace_parent, i.tags, i.timeout_ms, i.lease_ms, i.group_key
    FROM input i
    WHERE (SELECT count(*) FROM admitted) >= 0 -- admitted first
    ORDER BY i.ord
    RETURNING id, state, run_at, created_at, tags
), tagged AS (
    INSERT INTO baton.job_tags (tag, job_id) SELECT unnest(tags), id FROM inserted WHERE tags IS NOT NULL
), events AS (
    INSERT INTO baton.job_events (job_id, to_state, attempt, lease_token)
    SELECT id, state, 0, 0 FROM inserted
), notified AS (
    SELECT pg_notify('baton_jobs', string_agg(DISTINCT queue || CASE
               WHEN coalesce(run_at, now() + delay_ms * interval '1 millisecond') > now() THEN '@' ELSE '' END, ',')) AS hint
    FROM input
)
SELECT inserted.id, inserted.state, inserted.run_at, inserted.created_at
FROM inserted CROSS JOIN notified ORDER BY inserted.id;

-- name: JobInsertUnique :many
-- Inserts jobs with a unique key, as JobInsertMany does the others (a
-- statement of their own: ON CONFLICT costs every insert about a tenth). A
-- job is not inserted while a job of its queue with the same key is in one
-- of its unique states (jobs_unique_idx, migration 20), nor after another of
-- the same statement: it is missing from the rows that come back, in input
-- order with their unique_key, for the caller to match (db.insert).
WITH input AS (
    SELECT unnest(@queues::text[]) AS queue,
           unnest(@payloads::text[]) AS payload,
           unnest(@priorities::smallint[]) AS priority,
           unnest(@delays_ms::bigint[]) AS delay_ms,
           nullif(unnest(@run_ats::timestamptz[]), '0001-01-01 00:00:00+00') AS run_at,
           unnest(@max_attempts::integer[]) AS max_attempts,
           nullif(unnest(@trace_parents::text[]), '') AS trace_parent,
           nullif(unnest(@tags::text[]), '')::text[] AS tags,
           nullif(unnest(@timeouts_ms::integer[]), 0) AS timeout_ms,
           nullif(unnest(@leases_ms::integer[]), 0) AS lease_ms,
           unnest(@unique_keys::text[]) AS unique_key,
           unnest(@unique_for_ms::bigint[]) AS unique_for_ms,
           unnest(@unique_states::text[])::baton.job_state[] AS unique_states,
           nullif(unnest(@groups::text[]), '') AS group_key,
           generate_subscripts(@queues::text[], 1) AS ord
), new_queues AS (
    INSERT INTO baton.queues (name)
    SELECT DISTINCT queue FROM input
    ON CONFLICT DO NOTHING
), admitted AS (
    -- Queues with a max_backlog admit the batch or refuse it whole
    -- (baton.admit raises queue_full); others cost one lookup.
    SELECT baton.admit(c.queue, c.n) AS n
    FROM (SELECT queue, count(*) AS n FROM input GROUP BY queue) c
    JOIN baton.queues q ON q.name = c.queue
    WHERE q.max_backlog IS NOT NULL
), inserted AS (
    INSERT INTO baton.jobs (queue, state, payload, priority, run_at, max_attempts, trace_parent, tags, timeout_ms, lease_ms,
                            unique_key, unique_states, group_key)
    SELECT i.queue,
           CASE WHEN coalesce(i.run_at, now() + i.delay_ms * interval '1 millisecond') > now()
                THEN 'scheduled' ELSE 'available' END::baton.job_state,
           i.payload::jsonb,
           i.priority,
           coalesce(i.run_at, now() + i.delay_ms * interval '1 millisecond'),
           nullif(i.max_attempts, 0),
           i.trace_parent, i.tags, i.timeout_ms, i.lease_ms,
           baton.unique_key(i.unique_key, i.unique_for_ms),
           i.unique_states, i.group_key
    FROM input i
    WHERE (SELECT count(*) FROM admitted) >= 0 -- admitted first
    ORDER BY i.ord
    ON CONFLICT (queue, unique_key) WHERE unique_key IS NOT NULL AND state = ANY (unique_states) DO NOTHING
    RETURNING id, state, run_at, created_at, unique_key, tags
), tagged AS (
    INSERT INTO baton.job_tags (tag, job_id) SELECT unnest(tags), id FROM inserted WHERE tags IS NOT NULL
), events AS (
    INSERT INTO baton.job_events (job_id, to_state, attempt, lease_token)
    SELECT id, state, 0, 0 FROM inserted
), notified AS (
    SELECT pg_notify('baton_jobs', string_agg(DISTINCT queue || CASE
               WHEN coalesce(run_at, now() + delay_ms * interval '1 millisecond') > now() THEN '@' ELSE '' END, ',')) AS hint
    FROM input
)
SELECT inserted.id, inserted.state, inserted.run_at, inserted.created_at, inserted.unique_key::text AS unique_key
FROM inserted CROSS JOIN notified ORDER BY inserted.id;

-- name: JobFindUnique :one
-- The job of queue that holds key (unique_for_ms: its bucket now) in one of
-- its unique states: what a duplicate submit gets back.
SELECT id FROM baton.jobs
WHERE queue = @queue::text AND unique_key = baton.unique_key(@unique_key::text, @unique_for_ms::bigint)
  AND state = ANY (unique_states);

-- name: JobClaim :many
-- Claims up to max_jobs due jobs of one queue in one statement: the
-- MATERIALIZED CTE locks exactly the rows it returns (never the
-- IN (SELECT ... LIMIT) shape, which can claim more), and the lease is set from
-- database time. Each claim bumps the job's lease_token, which fences every
-- later write, and fills in the stage's max_attempts if the job has none.
-- The claim writes no history row: the row that ends the attempt records
-- claimed_at, and baton.job_history shows the claim (migration 7). The
-- UPDATE takes the locked ids as one array: every plan then goes through the
-- primary key, even a generic one made without knowing max_jobs (a join on
-- the CTE could hash-join a scan of the whole table).
--
-- A claim whose rows cannot all be read (a payload past PostgreSQL's 1 GB
-- limit written out, a damaged row) fails as a whole; the worker claims again
-- with check_payloads, which returns such a payload as NULL, and fails that
-- job alone (migration 15).
--
-- started_at is the time the claim took the rows (clock_timestamp(), in
-- the database), not its transaction's start: a limited claim waits for its
-- turn first, and the history then shows its jobs running only from when
-- the claim counted the queue's running jobs (the chaos checker replays the
-- history to check the limit).
--
-- A queue with a global concurrency (the queue's, else the stage's
-- global_concurrency; 0 for none) claims no more than the limit less its
-- running jobs. That count is right only if no other claim of the queue
-- commits meanwhile: the worker runs this statement after QueueHoldForClaim
-- in one transaction. Without a limit the count is never read.
--
-- The claim index keeps an entry for every row version it ever held, until
-- vacuum removes the versions no transaction can see. While a transaction
-- somewhere holds back that horizon (an idle session, a long report), the
-- entries of every job claimed since pile up in front of the waiting ones,
-- and a claim that reads the index from its front steps over them all: 29 ms
-- and 8,700 pages a claim after three minutes of a held xid at 3,175 jobs/s,
-- against 0.4 ms and 540 clean. So the worker passes a floor, the
-- (priority, run_at) of the jobs it claimed last less a margin for
-- submits that commit late, and the claim starts reading there: jobs of
-- a more urgent priority (ahead) and those at or above the floor (rest).
-- A job below the floor in its own priority (run_at far in the past) is
-- found by JobBelowFloor, which the worker runs beside its claims; then its
-- next claim's floor is that job's run_at. Its first claim has no floor
-- (floor_priority 0, floor_run_at NULL).
WITH room AS MATERIALIZED (
    SELECT least(@max_jobs::integer, (
        SELECT greatest(0, l.n - (SELECT count(*) FROM baton.jobs r WHERE r.queue = @queue_name::text AND r.state = 'running'))
        FROM (SELECT coalesce((SELECT q.global_concurrency FROM baton.queues q WHERE q.name = @queue_name::text),
                              nullif(@global_concurrency::integer, 0)) AS n) l
        WHERE l.n IS NOT NULL)) AS n
), ahead AS MATERIALIZED (
    SELECT j.id
    FROM baton.jobs j
    WHERE j.queue = @queue_name::text
      AND j.state IN ('scheduled', 'available', 'retrying')
      AND j.priority < @floor_priority::integer
      AND j.run_at <= now()
      AND NOT j.isolated -- these run alone: JobClaimIsolated
      AND NOT EXISTS (SELECT 1 FROM baton.queues q WHERE q.name = @queue_name::text AND q.paused)
    ORDER BY j.priority, j.run_at, j.id
    LIMIT (SELECT n FROM room)
    FOR UPDATE OF j SKIP LOCKED
), rest AS MATERIALIZED (
    SELECT j.id
    FROM baton.jobs j
    WHERE j.queue = @queue_name::text
      AND j.state IN ('scheduled', 'available', 'retrying')
      AND (j.priority, j.run_at) >= (@floor_priority::integer, coalesce(sqlc.narg('floor_run_at')::timestamptz, '-infinity'))
      AND j.run_at <= now()
      AND NOT j.isolated
      AND NOT EXISTS (SELECT 1 FROM baton.queues q WHERE q.name = @queue_name::text AND q.paused)
    ORDER BY j.priority, j.run_at, j.id
    LIMIT (SELECT n FROM room) - (SELECT count(*) FROM ahead)
    FOR UPDATE OF j SKIP LOCKED
), locked AS (
    SELECT id FROM ahead UNION ALL SELECT id FROM rest
), claimed AS (
    UPDATE baton.jobs j
    SET state = 'running',
        attempts = j.attempts + 1,
        max_attempts = coalesce(j.max_attempts, @max_attempts::integer),
        lease_token = j.lease_token + 1,
        lease_expires_at = now() + interval '1 millisecond' * coalesce(least(j.lease_ms, @max_job_lease_ms::bigint), @lease_ms::bigint),
        leased_by = @worker_id::text,
        started_at = clock_timestamp()
    WHERE j.id = ANY (ARRAY(SELECT id FROM locked))
    RETURNING j.id, j.queue, j.payload, j.priority, j.attempts, j.max_attempts, j.lease_token,
              j.run_at, j.created_at, j.started_at, j.parent_id, j.trace_parent, j.tags, j.timeout_ms, j.lease_ms, j.group_key
)
SELECT id, queue,
       (CASE WHEN @check_payloads::boolean THEN baton.readable(payload) ELSE payload END)::jsonb AS payload,
       priority, attempts, max_attempts::integer AS max_attempts, lease_token, run_at, created_at,
       started_at::timestamptz AS started_at, parent_id, trace_parent, tags, timeout_ms, lease_ms, group_key
FROM claimed
ORDER BY priority, run_at, id;

-- name: JobBelowFloor :one
-- The run_at of the oldest due job waiting below a stage's claim floor in
-- the floor's own priority (more urgent ones every claim reads):
-- one submitted to run at a past time, or by a transaction that committed
-- long after it began. The worker asks from a loop of its own and, if one
-- waits, its next claim starts there rather than at the index's front:
-- while a transaction holds back vacuum, a read from the front steps over
-- every job claimed since (this one does, off the claim loop), and one from
-- the found job only over those claimed after it. No row: none waits.
SELECT j.run_at
FROM baton.jobs j
WHERE j.queue = @queue_name::text
  AND j.state IN ('scheduled', 'available', 'retrying')
  AND j.priority = @floor_priority::integer
  AND j.run_at < @floor_run_at::timestamptz
  AND j.run_at <= now()
  AND NOT j.isolated
ORDER BY j.run_at
LIMIT 1;

-- name: JobClaimGrouped :many
-- JobClaim for a stage with group_concurrency or fair: the worker runs it
-- after QueueHoldForClaim, in one transaction, so that each claim of the
-- queue counts the running jobs of every group after the one before it
-- committed. It reads the groups that have unfinished jobs (a loose index
-- scan of jobs_group_idx, one probe per group), and from each
--   - with group_concurrency N: the due jobs among the group's first N
--     unfinished jobs in submit order (id), no more than N less the group's
--     running jobs; a job that waits (delayed, retrying) keeps its place,
--     and the jobs behind it wait for it;
--   - else: its due jobs by priority, at most max_jobs.
-- A fair claim takes them in turns by start-time fair queueing: the queue
-- keeps a virtual clock (baton.queues.fair_clock, the tag of the last job it
-- claimed) and each group the tag its next job starts at
-- (baton.queue_groups.next_tag): a group's k-th job is tagged
-- max(clock, next_tag) + (k - 1) / weight, and the lowest tags go first
-- (ties: by priority, then the job that has waited longest). A group of
-- weight 3 then gets three claims for every one of a group of weight 1
-- while both have due jobs, a lone group gets every slot, and a group that
-- was idle starts at the clock: no credit saved up, no debt. The claim
-- writes back the tags (one row per group claimed from) and the clock.
-- Otherwise it takes them by priority, as JobClaim. Jobs without a group are
-- one group of their own (tagged under the group ''), not limited per
-- group, taken from the queue's next 1,000 due jobs (jobs_claim_idx: no
-- index reads them alone).
WITH RECURSIVE room AS MATERIALIZED (
    SELECT least(@max_jobs::integer, coalesce((
        SELECT greatest(0, l.n - (SELECT count(*) FROM baton.jobs r WHERE r.queue = @queue_name::text AND r.state = 'running'))
        FROM (SELECT coalesce((SELECT q.global_concurrency FROM baton.queues q WHERE q.name = @queue_name::text),
                              nullif(@global_concurrency::integer, 0)) AS n) l
        WHERE l.n IS NOT NULL), @max_jobs::integer))::integer AS n,
        coalesce((SELECT q.fair_clock FROM baton.queues q WHERE q.name = @queue_name::text), 0)::float8 AS clock
    WHERE NOT EXISTS (SELECT 1 FROM baton.queues q WHERE q.name = @queue_name::text AND q.paused)
), groups AS (
    (SELECT j.group_key FROM baton.jobs j
     WHERE j.queue = @queue_name::text AND j.group_key IS NOT NULL
       AND j.state IN ('scheduled', 'available', 'retrying', 'running')
     ORDER BY j.group_key LIMIT 1)
    UNION ALL
    SELECT (SELECT j.group_key FROM baton.jobs j
            WHERE j.queue = @queue_name::text AND j.group_key > g.group_key
              AND j.state IN ('scheduled', 'available', 'retrying', 'running')
            ORDER BY j.group_key LIMIT 1)
    FROM groups g WHERE g.group_key IS NOT NULL
), running AS (
    SELECT j.group_key, count(*)::integer AS n FROM baton.jobs j
    WHERE j.queue = @queue_name::text AND j.state = 'running' AND j.group_key IS NOT NULL
    GROUP BY j.group_key
), heads AS MATERIALIZED (
    -- Fair shares without a group concurrency: each group's first due job,
    -- and the tag it gets.
    SELECT g.group_key, h.id, h.priority, h.run_at,
           greatest(room.clock, coalesce(w.next_tag, 0)) AS base, coalesce(w.weight, 1) AS weight
    FROM groups g
    CROSS JOIN room
    CROSS JOIN LATERAL (
        SELECT j.id, j.priority, j.run_at FROM baton.jobs j
        WHERE @group_concurrency::integer = 0
          AND j.queue = @queue_name::text AND j.group_key = g.group_key
          AND j.state IN ('scheduled', 'available', 'retrying') AND j.run_at <= now() AND NOT j.isolated
        ORDER BY j.priority, j.run_at, j.id LIMIT 1
    ) h
    LEFT JOIN baton.queue_groups w ON w.queue = @queue_name::text AND w.group_key = g.group_key
    WHERE g.group_key IS NOT NULL
), cut AS MATERIALIZED (
    -- The room-th lowest tag of the first jobs: no job tagged later is
    -- claimed (those are room candidates already), so a group gives more
    -- than its first job only while their tags stay within it. With many
    -- groups at the clock, that is none: one job read per group.
    SELECT coalesce((SELECT h.base FROM heads h ORDER BY h.base OFFSET greatest(room.n - 1, 0) LIMIT 1),
                    'Infinity'::float8) AS tag
    FROM room
), ranked AS (
    SELECT g.group_key, u.id, u.priority, u.run_at, row_number() OVER (PARTITION BY g.group_key ORDER BY u.id) AS rank
    FROM groups g
    CROSS JOIN LATERAL (
        SELECT j.id, j.priority, j.run_at, j.state, j.isolated FROM baton.jobs j
        WHERE @group_concurrency::integer > 0
          AND j.queue = @queue_name::text AND j.group_key = g.group_key
          AND j.state IN ('scheduled', 'available', 'retrying', 'running')
        ORDER BY j.id LIMIT @group_concurrency::integer
    ) u
    WHERE g.group_key IS NOT NULL AND u.state <> 'running' AND u.run_at <= now() AND NOT u.isolated
    UNION ALL
    SELECT h.group_key, h.id, h.priority, h.run_at, 1 FROM heads h
    UNION ALL
    SELECT h.group_key, m.id, m.priority, m.run_at, 1 + row_number() OVER (PARTITION BY h.group_key ORDER BY m.priority, m.run_at, m.id)
    FROM heads h
    CROSS JOIN room
    CROSS JOIN cut
    CROSS JOIN LATERAL (
        SELECT j.id, j.priority, j.run_at FROM baton.jobs j
        WHERE j.queue = @queue_name::text AND j.group_key = h.group_key
          AND j.state IN ('scheduled', 'available', 'retrying') AND j.run_at <= now() AND NOT j.isolated
        ORDER BY j.priority, j.run_at, j.id
        OFFSET 1
        LIMIT CASE WHEN cut.tag = 'Infinity'::float8 THEN room.n
                   ELSE least(room.n, floor((cut.tag - h.base) * h.weight + 1e-9)::integer + 1) END - 1
    ) m
    WHERE cut.tag = 'Infinity'::float8 OR h.base + 1.0 / h.weight <= cut.tag + 1e-9
    UNION ALL
    SELECT '', x.id, x.priority, x.run_at, row_number() OVER (ORDER BY x.priority, x.run_at, x.id) AS rank
    FROM (SELECT j.id, j.priority, j.run_at, j.group_key FROM baton.jobs j
          WHERE j.queue = @queue_name::text
            AND j.state IN ('scheduled', 'available', 'retrying') AND j.run_at <= now() AND NOT j.isolated
          ORDER BY j.priority, j.run_at, j.id LIMIT 1000) x
    WHERE x.group_key IS NULL
), candidates AS (
    SELECT k.group_key, k.id, k.priority, k.run_at, coalesce(w.weight, 1) AS weight,
           greatest(room.clock, coalesce(w.next_tag, 0)) + (k.rank - 1)::float8 / coalesce(w.weight, 1) AS tag
    FROM ranked k
    CROSS JOIN room
    LEFT JOIN running r ON r.group_key = k.group_key
    LEFT JOIN baton.queue_groups w ON w.queue = @queue_name::text AND w.group_key = k.group_key
    WHERE @group_concurrency::integer = 0 OR k.group_key = '' OR k.rank + coalesce(r.n, 0) <= @group_concurrency::integer
), locked AS MATERIALIZED (
    SELECT j.id
    FROM baton.jobs j
    WHERE j.id = ANY (ARRAY(
            SELECT c.id FROM candidates c
            ORDER BY CASE WHEN @fair::boolean THEN c.tag ELSE 0 END, c.priority, c.run_at, c.id
            LIMIT (SELECT n FROM room)))
      AND j.state IN ('scheduled', 'available', 'retrying')
      AND j.run_at <= now()
    FOR UPDATE OF j SKIP LOCKED
), served AS (
    SELECT c.group_key, max(c.tag + 1.0 / c.weight) AS next_tag, max(c.tag) AS clock
    FROM candidates c
    WHERE @fair::boolean AND c.id = ANY (ARRAY(SELECT id FROM locked))
    GROUP BY c.group_key
), tagged AS (
    INSERT INTO baton.queue_groups AS g (queue, group_key, next_tag)
    SELECT @queue_name::text, s.group_key, s.next_tag FROM served s
    ON CONFLICT (queue, group_key) DO UPDATE SET next_tag = excluded.next_tag
), clocked AS (
    UPDATE baton.queues q SET fair_clock = (SELECT max(s.clock) FROM served s)
    WHERE q.name = @queue_name::text AND EXISTS (SELECT 1 FROM served)
), claimed AS (
    UPDATE baton.jobs j
    SET state = 'running',
        attempts = j.attempts + 1,
        max_attempts = coalesce(j.max_attempts, @max_attempts::integer),
        lease_token = j.lease_token + 1,
        lease_expires_at = now() + interval '1 millisecond' * coalesce(least(j.lease_ms, @max_job_lease_ms::bigint), @lease_ms::bigint),
        leased_by = @worker_id::text,
        started_at = clock_timestamp()
    WHERE j.id = ANY (ARRAY(SELECT id FROM locked))
    RETURNING j.id, j.queue, j.payload, j.priority, j.attempts, j.max_attempts, j.lease_token,
              j.run_at, j.created_at, j.started_at, j.parent_id, j.trace_parent, j.tags, j.timeout_ms, j.lease_ms, j.group_key
)
SELECT id, queue,
       (CASE WHEN @check_payloads::boolean THEN baton.readable(payload) ELSE payload END)::jsonb AS payload,
       priority, attempts, max_attempts::integer AS max_attempts, lease_token, run_at, created_at,
       started_at::timestamptz AS started_at, parent_id, trace_parent, tags, timeout_ms, lease_ms, group_key
FROM claimed
ORDER BY priority, run_at, id;

-- name: JobClaimIsolated :one
-- Claims one isolated job of a queue (one whose lease expired while it ran
-- beside others) for a worker that will run it alone: the worker holds it,
-- heartbeating, while it drains its other jobs, then marks the run alone
-- (JobStartAlone). Like JobClaim, one statement, fenced by the new token. A
-- statement of its own, not JobClaim with a parameter: only a plan that knows
-- it wants isolated jobs can read them from their small partial index.
WITH locked AS MATERIALIZED (
    SELECT j.id
    FROM baton.jobs j
    WHERE j.queue = @queue_name::text
      AND j.isolated
      AND j.state IN ('scheduled', 'available', 'retrying')
      AND j.run_at <= now()
      AND NOT EXISTS (SELECT 1 FROM baton.queues q WHERE q.name = @queue_name::text AND q.paused)
      -- Within the group's window, as JobClaimGrouped (0: no group limit).
      AND (@group_concurrency::integer = 0 OR j.group_key IS NULL OR (
            j.id IN (SELECT u.id FROM baton.jobs u
                     WHERE u.queue = @queue_name::text AND u.group_key = j.group_key
                       AND u.state IN ('scheduled', 'available', 'retrying', 'running')
                     ORDER BY u.id LIMIT @group_concurrency::integer)
            AND (SELECT count(*) FROM baton.jobs r
                 WHERE r.queue = @queue_name::text AND r.group_key = j.group_key AND r.state = 'running') < @group_concurrency::integer))
    ORDER BY j.priority, j.run_at, j.id
    -- Within a global concurrency, as JobClaim.
    LIMIT least(1, (
        SELECT greatest(0, l.n - (SELECT count(*) FROM baton.jobs r WHERE r.queue = @queue_name::text AND r.state = 'running'))
        FROM (SELECT coalesce((SELECT q.global_concurrency FROM baton.queues q WHERE q.name = @queue_name::text),
                              nullif(@global_concurrency::integer, 0)) AS n) l
        WHERE l.n IS NOT NULL))
    FOR UPDATE OF j SKIP LOCKED
)
UPDATE baton.jobs j
SET state = 'running',
    attempts = j.attempts + 1,
    max_attempts = coalesce(j.max_attempts, @max_attempts::integer),
    lease_token = j.lease_token + 1,
    lease_expires_at = now() + interval '1 millisecond' * coalesce(least(j.lease_ms, @max_job_lease_ms::bigint), @lease_ms::bigint),
    leased_by = @worker_id::text,
    started_at = clock_timestamp(),
    alone_since = NULL
FROM locked
WHERE j.id = locked.id
RETURNING j.id, j.queue, j.payload, j.priority, j.attempts, j.max_attempts::integer AS max_attempts, j.lease_token,
          j.run_at, j.created_at, j.started_at::timestamptz AS started_at, j.parent_id, j.trace_parent, j.lost_leases,
          j.tags, j.timeout_ms, j.lease_ms, j.group_key;

-- name: JobStartAlone :execrows
-- Marks a held isolated job's run as alone (its worker has nothing else in
-- flight), fenced by the lease token: from now on a lease it loses is its own.
UPDATE baton.jobs
SET alone_since = now()
WHERE id = @id::bigint AND lease_token = @lease_token::bigint AND state = 'running';

-- name: JobHeartbeat :many
-- Extends the leases of running jobs this worker still owns; the ids not
-- returned have lost their lease (reaped or canceled). A job submitted with
-- a lease of its own keeps it, capped by max_job_lease_ms.
--
-- The heartbeat never waits for a row lock: it locks what it can with SKIP
-- LOCKED and extends those leases. A row another statement holds (nearly
-- always this worker's own completion of that job) keeps its lease as it
-- is this time. The ids returned are those the statement's snapshot shows
-- running under their tokens (which the extended ones are): a job lost
-- while the statement ran is reported by the next heartbeat. Waiting
-- deadlocked: the heartbeat and a completion lock the same jobs in their
-- own orders, and the loser lost a second to the deadlock check and, for a
-- completion, its group's commit (which went on one job at a time).
--
-- Every statement given the ids of running jobs takes the state each must
-- be in from a MATERIALIZED list of the ids (j.state = h.state), never as
-- a constant (j.state = 'running'). The constant let the planner pick the
-- join from the statistics of running jobs, which, taken while few jobs
-- ran, say none run: it hashed the ids against a scan of all of
-- jobs_running_idx, which keeps an entry for every job that ran since a
-- held horizon (a completion read 30,000 pages), and, told the ids in an
-- index condition as well (id = ANY), compared every id with every running
-- job (a million comparisons to complete a thousand). Joined
-- on a column of the list, the state is one more test of each row the
-- primary key finds, and still fences the write when the row changed.
WITH h AS MATERIALIZED (
    SELECT unnest(@ids::bigint[]) AS id, unnest(@lease_tokens::bigint[]) AS lease_token,
           'running'::baton.job_state AS state
), held AS MATERIALIZED (
    SELECT j.id
    FROM baton.jobs j
    JOIN h ON j.id = h.id AND j.lease_token = h.lease_token AND j.state = h.state
    FOR NO KEY UPDATE OF j SKIP LOCKED
), extended AS (
    UPDATE baton.jobs j
    SET lease_expires_at = now() + interval '1 millisecond' * coalesce(least(j.lease_ms, @max_job_lease_ms::bigint), @lease_ms::bigint)
    WHERE j.id = ANY (ARRAY(SELECT id FROM held))
)
SELECT j.id
FROM baton.jobs j
JOIN h ON j.id = h.id AND j.lease_token = h.lease_token AND j.state = h.state;

-- name: JobCompleteMany :many
-- Completes jobs in one statement, fenced by their lease tokens: marks each
-- succeeded, records the event, and hands its result to the next queue (if
-- any) as a new job whose parent is the completed one. A job whose token no
-- longer matches changes nothing and is absent from the result.
--
-- A row marked direct (the worker holds a free slot of the next stage for
-- it) creates the next job already claimed by worker_id, unless the next
-- queue is paused: the hand-off and the next claim are then one commit.
-- Neither the success nor the next job's creation (and a direct claim)
-- needs a history row: the rows' completed_by, parent_id and started_at
-- imply them (baton.job_history).
--
-- A fan_out stage hands off one job per element of its array result, in
-- order (parent_seq 0 .. n-1), and records the fan-out (baton.fan_outs). A
-- join stage hands off nothing for a job that came from a fan-out: it takes
-- one from the fan-out's pending count, and says (join_ready) when that
-- reached zero, for the worker to make the joined job (JobJoin) in the same
-- transaction; a job of a join stage that came from no fan-out is handed off
-- alone, as an array of one. The branches a stage does not use cost a
-- one-time filter each.
WITH input AS MATERIALIZED ( -- with the state each job must be in (see JobHeartbeat)
    SELECT 'running'::baton.job_state AS state,
           unnest(@ids::bigint[]) AS id,
           unnest(@lease_tokens::bigint[]) AS lease_token,
           unnest(@results::text[]) AS result,
           unnest(@next_queues::text[]) AS next_queue,
           nullif(unnest(@trace_parents::text[]), '') AS trace_parent,
           unnest(@direct::boolean[]) AS direct,
           unnest(@run_us::bigint[]) AS run_us
), done AS (
    UPDATE baton.jobs j
    SET state = 'succeeded',
        result = i.result::jsonb,
        finished_at = now(),
        lease_expires_at = NULL,
        leased_by = NULL, -- no lease, no lessee
        last_error = NULL, -- earlier attempts' errors stay in the history
        -- The row is the success's history (migration 28): the lease token
        -- fences the update, so worker_id held the lease. A success leaves
        -- run_at and started_at as they were: the attempt's due and claim.
        completed_by = @worker_id::text,
        run_us = i.run_us
    FROM input i
    WHERE j.id = i.id
      AND j.lease_token = i.lease_token
      AND j.state = i.state
    RETURNING j.id, j.attempts, i.lease_token, j.started_at, j.run_at, i.run_us, j.priority, j.result,
              i.next_queue, i.trace_parent, i.direct, j.parent_id, j.tags, j.group_key,
              -- the journey's root, for the next job (unknown for jobs handed off before migration 14)
              CASE WHEN j.parent_id IS NULL THEN j.id ELSE j.root_id END AS root_id,
              CASE WHEN j.parent_id IS NULL THEN j.created_at ELSE j.root_created_at END AS root_created_at
), new_queues AS (
    INSERT INTO baton.queues (name)
    SELECT DISTINCT next_queue FROM done WHERE next_queue <> ''
    ON CONFLICT DO NOTHING
), fanned AS (
    INSERT INTO baton.fan_outs (parent_id, children, pending)
    SELECT id, jsonb_array_length(result), jsonb_array_length(result) FROM done
    WHERE @fan_out::boolean AND next_queue <> '' AND jsonb_array_length(result) > 0
), joined AS (
    UPDATE baton.fan_outs f
    SET pending = f.pending - c.n
    FROM (SELECT parent_id, count(*) AS n FROM done WHERE @join_stage::boolean AND parent_id IS NOT NULL GROUP BY parent_id) c
    WHERE f.parent_id = c.parent_id
    RETURNING f.parent_id, f.pending
), handoff AS (
    SELECT d.id, d.priority, coalesce(d.result, 'null'::jsonb) AS payload, 0 AS seq, d.next_queue, d.trace_parent,
           d.root_id, d.root_created_at, d.tags, d.group_key,
           d.direct AND NOT EXISTS (SELECT 1 FROM baton.queues q WHERE q.name = d.next_queue AND q.paused) AS run
    FROM done d
    WHERE d.next_queue <> '' AND NOT @fan_out::boolean AND NOT @join_stage::boolean
    UNION ALL
    SELECT d.id, d.priority, e.elem, (e.ord - 1)::integer, d.next_queue, d.trace_parent, d.root_id, d.root_created_at, d.tags, d.group_key, false
    FROM done d
    CROSS JOIN LATERAL jsonb_array_elements(d.result) WITH ORDINALITY AS e(elem, ord)
    WHERE @fan_out::boolean AND d.next_queue <> ''
    UNION ALL
    SELECT d.id, d.priority, jsonb_build_array(coalesce(d.result, 'null'::jsonb)), 0, d.next_queue, d.trace_parent,
           d.root_id, d.root_created_at, d.tags, d.group_key, false
    FROM done d
    WHERE @join_stage::boolean AND d.next_queue <> '' AND NOT EXISTS (SELECT 1 FROM joined j WHERE j.parent_id = d.parent_id)
), handed AS (
    INSERT INTO baton.jobs (queue, state, payload, priority, parent_id, parent_seq, root_id, root_created_at, trace_parent,
                            attempts, max_attempts, lease_token, lease_expires_at, leased_by, started_at, tags, group_key)
    SELECT h.next_queue,
           CASE WHEN h.run THEN 'running' ELSE 'available' END::baton.job_state,
           h.payload, h.priority, h.id, h.seq, h.root_id, h.root_created_at, h.trace_parent,
           CASE WHEN h.run THEN 1 ELSE 0 END,
           CASE WHEN h.run THEN @next_max_attempts::integer END,
           CASE WHEN h.run THEN 1 ELSE 0 END,
           CASE WHEN h.run THEN now() + interval '1 millisecond' * @next_lease_ms::bigint END,
           CASE WHEN h.run THEN @worker_id::text END,
           CASE WHEN h.run THEN now() END,
           h.tags, h.group_key -- a journey keeps its tags and group
    FROM handoff h
    ORDER BY h.id, h.seq
    RETURNING id, parent_id, parent_seq, state, created_at, payload, tags
), tagged AS (
    INSERT INTO baton.job_tags (tag, job_id) SELECT unnest(tags), id FROM handed WHERE tags IS NOT NULL
)
SELECT d.id, d.lease_token::bigint AS lease_token, coalesce(h.id, 0)::bigint AS next_id,
       coalesce(h.state = 'running', false)::boolean AS next_claimed,
       coalesce(h.created_at, now())::timestamptz AS next_created_at,
       -- a job handed off already claimed starts with its payload as jsonb
       -- keeps it, as a claimed job's would be (not the handler's own bytes)
       (CASE WHEN h.state = 'running' THEN h.payload END)::jsonb AS next_payload,
       coalesce((SELECT j.pending = 0 FROM joined j WHERE j.parent_id = d.parent_id), false)::boolean AS join_ready
FROM done d
LEFT JOIN handed h ON h.parent_id = d.id AND h.parent_seq = 0
ORDER BY d.id;

-- name: JobJoin :many
-- Makes the joined job of each fan-out whose siblings have all succeeded
-- (pending reached zero), in the transaction of the completion that took it
-- there (JobCompleteMany, join_ready): its payload is the array of the
-- siblings' results in fan-out order, its parent the job that fanned out,
-- and its parent_seq -1, which jobs_handoff_once holds to one. A statement
-- of its own: it must see the siblings that other transactions completed
-- (and committed) before this one took the fan-out's row lock.
WITH ready AS (
    SELECT f.parent_id FROM baton.fan_outs f WHERE f.parent_id = ANY(@parent_ids::bigint[]) AND f.pending = 0
), joined AS (
    SELECT r.parent_id, jsonb_agg(coalesce(c.result, 'null'::jsonb) ORDER BY c.parent_seq) AS payload
    FROM ready r
    JOIN baton.jobs c ON c.parent_id = r.parent_id AND c.parent_seq >= 0
    GROUP BY r.parent_id
), new_queue AS (
    INSERT INTO baton.queues (name) SELECT @next_queue::text WHERE EXISTS (SELECT 1 FROM joined) ON CONFLICT DO NOTHING
), inserted AS (
    INSERT INTO baton.jobs (queue, state, payload, priority, parent_id, parent_seq, root_id, root_created_at, trace_parent, tags, group_key)
    SELECT @next_queue::text, 'available', j.payload, p.priority, p.id, -1,
           CASE WHEN p.parent_id IS NULL THEN p.id ELSE p.root_id END,
           CASE WHEN p.parent_id IS NULL THEN p.created_at ELSE p.root_created_at END,
           p.trace_parent, p.tags, p.group_key
    FROM joined j
    JOIN baton.jobs p ON p.id = j.parent_id
    ORDER BY p.id
    ON CONFLICT (parent_id, parent_seq) WHERE parent_id IS NOT NULL DO NOTHING
    RETURNING id, parent_id, queue, tags
), tagged AS (
    INSERT INTO baton.job_tags (tag, job_id) SELECT unnest(tags), id FROM inserted WHERE tags IS NOT NULL
), cleared AS (
    DELETE FROM baton.fan_outs f USING ready r WHERE f.parent_id = r.parent_id
), notified AS (
    SELECT count(pg_notify('baton_jobs', queue)) AS n FROM (SELECT DISTINCT queue FROM inserted) q
)
SELECT inserted.id, inserted.parent_id::bigint AS parent_id FROM inserted CROSS JOIN notified;

-- name: JobFail :one
-- Records a failed attempt, fenced by the lease token: retrying after the
-- given delay, or dead when attempts are exhausted or the failure is
-- permanent, with how long the handler ran. A handler may end its job as
-- canceled instead (worker.Cancel).
--
-- A failure for a resource the worker itself ran out of (worker_fault: no
-- file descriptors, no memory) is not the job's: up to max_worker_faults of
-- them per job are not counted as attempts, so that a worker in trouble
-- cannot use up its jobs' attempts, and the job still ends; each waits
-- twice as long as the one before, up to max_delay_ms. An unreadable job (a
-- poison row: its payload cannot be written out) is permanent, and its
-- payload moves aside, so that reading the job costs nothing. Both are kept
-- in baton.job_faults (migration 15). A retry sends a wake-up hint naming
-- its queue with "@" (a job not due yet), so that idle replicas set an alarm
-- for it (the notified CTE is joined so that it runs).
WITH attempt AS (
    -- The attempt's due time and payload, before the update moves them, and
    -- what becomes of the job. Read in the statement's snapshot: while the
    -- token matches, nothing else moves them.
    SELECT id, run_at, payload, fault_count, uncounted,
           NOT uncounted AND (@permanent::boolean OR @canceled::boolean OR attempts >= max_attempts) AS ended
    FROM (SELECT j.id, j.run_at, j.payload, j.attempts, j.max_attempts, coalesce(f.worker_faults, 0) AS fault_count,
                 @worker_fault::boolean AND coalesce(f.worker_faults, 0) < @max_worker_faults::integer AS uncounted
          FROM baton.jobs j
          LEFT JOIN baton.job_faults f ON f.job_id = j.id
          WHERE j.id = @id::bigint AND j.lease_token = @lease_token::bigint AND j.state = 'running') j
), failed AS (
    UPDATE baton.jobs j
    SET state = CASE WHEN a.ended AND @canceled::boolean THEN 'canceled' WHEN a.ended THEN 'dead'
                     ELSE 'retrying' END::baton.job_state,
        run_at = CASE WHEN a.ended THEN j.run_at
                      WHEN a.uncounted THEN now() + interval '1 millisecond' *
                           least((@delay_ms::bigint) * 2 ^ least(a.fault_count, 30), @max_delay_ms::bigint)
                      ELSE now() + interval '1 millisecond' * @delay_ms::bigint END,
        finished_at = CASE WHEN a.ended THEN now() END,
        attempts = j.attempts - a.uncounted::integer,
        last_error = @error::text,
        payload = CASE WHEN @unreadable::boolean THEN 'null'::jsonb ELSE j.payload END,
        lease_expires_at = NULL,
        leased_by = NULL,
        isolated = false, -- it failed, but its worker lived: it need not run alone
        alone_since = NULL
    FROM attempt a
    WHERE j.id = a.id
      AND j.lease_token = @lease_token::bigint
      AND j.state = 'running'
    RETURNING j.id, j.queue, j.state, j.attempts, j.started_at, j.last_error, j.run_at, a.run_at AS due_at, a.uncounted,
              a.payload AS old_payload
), faults AS (
    INSERT INTO baton.job_faults AS f (job_id, worker_faults, unreadable_payload)
    SELECT id, uncounted::integer, CASE WHEN @unreadable::boolean THEN old_payload END
    FROM failed
    WHERE uncounted OR @unreadable::boolean
    ON CONFLICT (job_id) DO UPDATE
    SET worker_faults = f.worker_faults + excluded.worker_faults,
        unreadable_payload = coalesce(excluded.unreadable_payload, f.unreadable_payload)
), events AS (
    -- The event carries the attempt that ran, whether or not it counts.
    INSERT INTO baton.job_events (job_id, from_state, to_state, attempt, lease_token, worker, error, claimed_at, due_at, run_us)
    SELECT id, 'running', state, attempts + uncounted::integer, @lease_token::bigint, @worker_id::text, last_error, started_at,
           due_at, @run_us::bigint
    FROM failed
), notified AS (
    SELECT count(pg_notify('baton_jobs', queue || '@')) AS n FROM failed WHERE state = 'retrying'
)
SELECT id, state, attempts, run_at, coalesce(uncounted, false)::boolean AS uncounted FROM failed CROSS JOIN notified;

-- name: JobSnooze :one
-- Sends a running job back to wait, fenced by the lease token, because its
-- handler asked to run again after delay_ms (worker.Snooze): the attempt is
-- not counted, and its history row says "snoozed for …" (baton.attempts
-- calls it an outcome of its own). Snoozes are counted in baton.job_snoozes;
-- past max_snoozes there is no row and the worker fails the attempt, so that
-- a job still ends. A wake-up hint names its queue ("@": not due yet).
WITH attempt AS (
    SELECT j.id, j.run_at, coalesce(s.snoozes, 0) AS snoozes
    FROM baton.jobs j
    LEFT JOIN baton.job_snoozes s ON s.job_id = j.id
    WHERE j.id = @id::bigint AND j.lease_token = @lease_token::bigint AND j.state = 'running'
), snoozed AS (
    UPDATE baton.jobs j
    SET state = CASE WHEN @delay_ms::bigint > 0 THEN 'scheduled' ELSE 'available' END::baton.job_state,
        run_at = now() + interval '1 millisecond' * @delay_ms::bigint,
        attempts = j.attempts - 1,
        lease_expires_at = NULL,
        leased_by = NULL,
        isolated = false,
        alone_since = NULL
    FROM attempt a
    WHERE j.id = a.id
      AND j.lease_token = @lease_token::bigint
      AND j.state = 'running'
      AND a.snoozes < @max_snoozes::integer
    RETURNING j.id, j.queue, j.state, j.attempts, j.started_at, a.run_at AS due_at, a.snoozes + 1 AS snoozes
), counted AS (
    INSERT INTO baton.job_snoozes AS s (job_id, snoozes)
    SELECT id, 1 FROM snoozed
    ON CONFLICT (job_id) DO UPDATE SET snoozes = s.snoozes + 1
), events AS (
    -- The event carries the attempt that ran, which is not counted.
    INSERT INTO baton.job_events (job_id, from_state, to_state, attempt, lease_token, worker, error, claimed_at, due_at, run_us)
    SELECT id, 'running', state, attempts + 1, @lease_token::bigint, @worker_id::text, @note::text, started_at, due_at,
           @run_us::bigint
    FROM snoozed
), notified AS (
    SELECT count(pg_notify('baton_jobs', queue || '@')) AS n FROM snoozed
)
SELECT snoozed.snoozes::integer AS snoozes FROM snoozed CROSS JOIN notified;

-- name: JobReleaseMany :many
-- Gives running jobs back on shutdown, fenced by their lease tokens: they are
-- available again at once and the interrupted attempt is not counted.
WITH r AS MATERIALIZED ( -- with the state each job must be in (see JobHeartbeat)
    SELECT unnest(@ids::bigint[]) AS id, unnest(@lease_tokens::bigint[]) AS lease_token,
           'running'::baton.job_state AS state
), released AS (
    UPDATE baton.jobs j
    SET state = 'available',
        attempts = j.attempts - 1,
        run_at = now(),
        lease_expires_at = NULL,
        leased_by = NULL,
        alone_since = NULL
    FROM r
    JOIN baton.jobs due ON due.id = r.id -- the attempt's due time, before run_at moves
    WHERE j.id = r.id
      AND j.lease_token = r.lease_token
      AND j.state = r.state
    RETURNING j.id, j.attempts, r.lease_token, j.started_at, due.run_at AS due_at
), events AS (
    -- The attempt is not counted, but it happened: its claim shows with it.
    -- (baton.attempts tells a release from a lost lease by this error.)
    INSERT INTO baton.job_events (job_id, from_state, to_state, attempt, lease_token, worker, error, claimed_at, due_at)
    SELECT id, 'running', 'available', attempts + 1, lease_token, @worker_id::text, 'released on worker shutdown', started_at, due_at
    FROM released
)
SELECT id FROM released ORDER BY id;

-- name: JobReap :many
-- Returns jobs whose lease expired to the queue (or to dead when attempts are
-- exhausted). One guarded statement: SKIP LOCKED skips rows a completion holds,
-- and the UPDATE re-checks state and expiry, so it is safe on every replica at
-- once and can never overwrite a job that completed meanwhile.
--
-- Crash isolation (migration 11): a job that lost its lease while it ran
-- beside other jobs may be a bystander of one that killed the worker, so the
-- attempt is not counted; it becomes isolated, to run alone next. A held
-- isolated job whose run never started (its worker died draining) costs
-- nothing either. Only a lease lost while the job ran alone counts, and ends
-- it dead once its attempts are used up. Reaped jobs send a wake-up hint
-- naming their queue with "!" (isolated jobs wait there).
WITH expired AS MATERIALIZED (
    SELECT id, attempts, leased_by, run_at, isolated AND alone_since IS NOT NULL AS ran_alone, isolated AND alone_since IS NULL AS held
    FROM baton.jobs
    WHERE state = 'running' AND lease_expires_at < now()
    ORDER BY id
    LIMIT @max_jobs::integer
    FOR UPDATE SKIP LOCKED
), reaped AS (
    UPDATE baton.jobs j
    SET state = CASE WHEN e.ran_alone AND j.attempts >= j.max_attempts THEN 'dead' ELSE 'available' END::baton.job_state,
        attempts = CASE WHEN e.ran_alone THEN j.attempts ELSE j.attempts - 1 END,
        lost_leases = CASE WHEN e.held THEN j.lost_leases ELSE j.lost_leases + 1 END,
        isolated = true,
        alone_since = NULL,
        run_at = CASE WHEN e.ran_alone AND j.attempts >= j.max_attempts THEN j.run_at ELSE now() END,
        finished_at = CASE WHEN e.ran_alone AND j.attempts >= j.max_attempts THEN now() END,
        last_error = CASE WHEN e.held THEN j.last_error
                          ELSE 'lease expired: worker ' || coalesce(j.leased_by, '?') || ' died or froze while this job ran ('
                               || j.lost_leases + 1 || CASE WHEN j.lost_leases = 0 THEN ' time' ELSE ' times' END
                               || CASE WHEN e.ran_alone AND j.attempts >= j.max_attempts THEN ')'
                                       ELSE '); it runs alone next' END
                     END,
        lease_expires_at = NULL,
        leased_by = NULL
    FROM expired e
    WHERE j.id = e.id
      AND j.state = 'running'
      AND j.lease_expires_at < now()
    RETURNING j.id, j.queue, j.state, j.lease_token, j.started_at, j.last_error
), events AS (
    -- The event carries the attempt that ran, whether or not it counts.
    -- Its error starts "lease expired" (baton.attempts reads it so).
    INSERT INTO baton.job_events (job_id, from_state, to_state, attempt, lease_token, worker, error, claimed_at, due_at)
    SELECT r.id, 'running', r.state, e.attempts, r.lease_token, e.leased_by,
           CASE WHEN e.held THEN 'lease expired: worker ' || coalesce(e.leased_by, '?') || ' stopped before it ran this job alone'
                ELSE r.last_error END,
           r.started_at, e.run_at
    FROM reaped r JOIN expired e USING (id)
), notified AS (
    SELECT count(pg_notify('baton_jobs', qs)) AS n
    FROM (SELECT string_agg(DISTINCT queue || '!', ',') AS qs FROM reaped WHERE state = 'available') q
    WHERE qs IS NOT NULL
)
SELECT reaped.id, reaped.state FROM reaped CROSS JOIN notified ORDER BY reaped.id;

-- name: JobPromote :execrows
-- Moves delayed and retrying jobs whose run_at has passed to available. Claims
-- take due jobs in these states directly; this keeps the stored state honest.
WITH due AS MATERIALIZED (
    SELECT id, state
    FROM baton.jobs
    WHERE state IN ('scheduled', 'retrying') AND run_at <= now()
    ORDER BY id
    LIMIT @max_jobs::integer
    FOR UPDATE SKIP LOCKED
), promoted AS (
    UPDATE baton.jobs j
    SET state = 'available'
    FROM due
    WHERE j.id = due.id
    RETURNING j.id, j.queue, j.attempts, j.lease_token, due.state AS from_state
)
INSERT INTO baton.job_events (job_id, from_state, to_state, attempt, lease_token)
SELECT p.id, p.from_state, 'available', p.attempts, p.lease_token
FROM promoted p
-- One wake-up hint naming the queues whose jobs became due.
CROSS JOIN (SELECT count(pg_notify('baton_jobs', qs)) FROM (SELECT string_agg(DISTINCT queue, ',') AS qs FROM promoted) q
            WHERE qs IS NOT NULL) notified;

-- name: JobCancel :one
-- Cancels a job that has not finished. A running job's lease is fenced by the
-- state change: its worker's heartbeat notices and stops the handler.
WITH target AS MATERIALIZED (
    SELECT id, state, leased_by, run_at FROM baton.jobs
    WHERE id = @id::bigint AND state IN ('scheduled', 'available', 'running', 'retrying')
    FOR UPDATE
), canceled AS (
    UPDATE baton.jobs j
    SET state = 'canceled', finished_at = now(), lease_expires_at = NULL, leased_by = NULL
    FROM target
    WHERE j.id = target.id
    RETURNING j.id, j.attempts, j.lease_token, target.leased_by, j.started_at, target.run_at, target.state AS from_state
), events AS (
    INSERT INTO baton.job_events (job_id, from_state, to_state, attempt, lease_token, worker, claimed_at, due_at)
    SELECT id, from_state, 'canceled', attempts, lease_token,
           CASE WHEN from_state = 'running' THEN leased_by END,
           CASE WHEN from_state = 'running' THEN started_at END,
           CASE WHEN from_state = 'running' THEN run_at END
    FROM canceled
)
SELECT id FROM canceled;

-- name: JobRetry :one
-- Re-drives a dead or canceled job: available at once with a fresh set of
-- attempts (its faults and snoozes forgotten), and a wake-up hint naming
-- its queue. A
-- poison row gets its payload back (fixed by SQL in
-- baton.job_faults.unreadable_payload, or as it was).
WITH target AS MATERIALIZED (
    SELECT j.id, j.state, f.unreadable_payload FROM baton.jobs j
    LEFT JOIN baton.job_faults f ON f.job_id = j.id
    WHERE j.id = @id::bigint AND j.state IN ('dead', 'canceled')
      -- not while another live job holds its unique key: that would break it
      AND (j.unique_key IS NULL OR NOT EXISTS (SELECT 1 FROM baton.jobs o
           WHERE o.queue = j.queue AND o.unique_key = j.unique_key AND o.state = ANY (o.unique_states)))
    FOR UPDATE OF j
), retried AS (
    UPDATE baton.jobs j
    SET state = 'available', attempts = 0, run_at = now(), finished_at = NULL,
        payload = coalesce(target.unreadable_payload, j.payload)
    FROM target
    WHERE j.id = target.id
    RETURNING j.id, j.queue, j.lease_token, target.state AS from_state
), forgotten AS (
    DELETE FROM baton.job_faults f USING retried r WHERE f.job_id = r.id
), unsnoozed AS (
    DELETE FROM baton.job_snoozes s USING retried r WHERE s.job_id = r.id
), events AS (
    INSERT INTO baton.job_events (job_id, from_state, to_state, attempt, lease_token)
    SELECT id, from_state, 'available', 0, lease_token FROM retried
), notified AS (
    SELECT count(pg_notify('baton_jobs', queue)) AS n FROM retried
)
SELECT id FROM retried CROSS JOIN notified;

-- name: JobRetryMany :one
-- Re-drives one batch of a queue's dead (or canceled) jobs, as JobRetry
-- does each, in id order after after_id: those finished since since_ms ago
-- (0: any time), whose last error holds error_like (any case; '': any). A
-- job whose unique key another live job holds (or an earlier one of the
-- batch takes back) is skipped and counted: it would break the key. With
-- dry_run, nothing changes. max_jobs bounds the rows one statement locks;
-- the caller goes on from last_id while matched reaches it.
WITH target AS MATERIALIZED (
    SELECT j.id, j.state, j.queue, j.unique_key
    FROM baton.jobs j
    WHERE j.queue = @queue_name::text
      AND j.state = @from_state::baton.job_state
      AND j.state IN ('dead', 'canceled') -- jobs_queue_state_idx's predicate holds them
      AND j.id > @after_id::bigint
      AND (@since_ms::bigint = 0 OR j.finished_at >= now() - interval '1 millisecond' * @since_ms::bigint)
      AND (@error_like::text = '' OR strpos(lower(j.last_error), lower(@error_like::text)) > 0)
    ORDER BY j.id
    LIMIT @max_jobs::integer
    FOR UPDATE OF j SKIP LOCKED
), free AS (
    SELECT t.id, t.state FROM target t
    WHERE t.unique_key IS NULL
       OR (NOT EXISTS (SELECT 1 FROM baton.jobs o
                       WHERE o.queue = t.queue AND o.unique_key = t.unique_key AND o.state = ANY (o.unique_states))
           AND NOT EXISTS (SELECT 1 FROM target e WHERE e.unique_key = t.unique_key AND e.id < t.id))
), retried AS (
    UPDATE baton.jobs j
    SET state = 'available', attempts = 0, run_at = now(), finished_at = NULL,
        payload = coalesce(f.unreadable_payload, j.payload)
    FROM free t
    LEFT JOIN baton.job_faults f ON f.job_id = t.id
    WHERE j.id = t.id AND NOT @dry_run::boolean
    RETURNING j.id, j.queue, j.lease_token, t.state AS from_state
), forgotten AS (
    DELETE FROM baton.job_faults f USING retried r WHERE f.job_id = r.id
), unsnoozed AS (
    DELETE FROM baton.job_snoozes s USING retried r WHERE s.job_id = r.id
), events AS (
    INSERT INTO baton.job_events (job_id, from_state, to_state, attempt, lease_token)
    SELECT id, from_state, 'available', 0, lease_token FROM retried
), notified AS (
    SELECT count(pg_notify('baton_jobs', q.queue)) AS n FROM (SELECT DISTINCT queue FROM retried) q
)
SELECT (SELECT count(*) FROM target)::integer AS matched,
       (SELECT count(*) FROM retried)::integer AS retried,
       ((SELECT count(*) FROM target) - (SELECT count(*) FROM free))::integer AS skipped,
       coalesce((SELECT max(id) FROM target), 0)::bigint AS last_id
FROM notified;

-- name: JobNextDue :one
-- How long until the earliest job of a queue that is not due yet (delayed or
-- retrying) becomes due, in milliseconds of database time; -1 when there is
-- none. A stage that has caught up sets its alarm by it.
SELECT coalesce(ceil(extract(epoch FROM min(run_at) - now()) * 1000), -1)::bigint AS due_in_ms
FROM baton.jobs
WHERE queue = @queue_name::text AND state IN ('scheduled', 'retrying') AND run_at > now();

-- name: JobGet :one
-- A job as users see it: payload and result NULL where they cannot be read
-- (migration 15).
SELECT * FROM baton.jobs_readable WHERE id = @id::bigint;

-- name: JobHistory :many
-- A job's state changes in order, the implied ones included: the last
-- max_events of them (a cancel and retry storm gave one job 400), each with
-- its seq, which numbers them from 1.
SELECT seq::integer AS seq, at::timestamptz AS at, from_state, to_state::baton.job_state AS to_state,
       attempt::integer AS attempt, lease_token::bigint AS lease_token, worker, error, run_seconds, note
FROM (SELECT * FROM baton.job_history
      WHERE job_id = @job_id::bigint
      ORDER BY seq DESC
      LIMIT @max_events::integer) h
ORDER BY seq;

-- name: JobList :many
-- Newest first, after the keyset cursor (ids below before_id); queue and
-- state are optional filters. A page is a few short index walks whatever
-- the table holds, and the same under a generic plan: each branch below is
-- one walk, kept or skipped at run time by its conditions on the arguments
-- alone, and names its index's predicate so that the planner may use it
-- without knowing the arguments. ("x IS NULL OR col = x" over the whole
-- table let a generic plan walk the primary key through every job of other
-- queues to fill a rare queue's page.) The rows come through
-- baton.jobs_readable, so one row that cannot be read fails no page.
WITH succeeded AS (
    -- Read only when a queue is named (the deltas have no index).
    SELECT coalesce(sum(c.n), 0) AS n
    FROM (SELECT n FROM baton.job_counts WHERE queue = sqlc.narg('queue')::text AND state = 'succeeded'
          UNION ALL
          SELECT n FROM baton.job_count_deltas WHERE queue = sqlc.narg('queue')::text AND state = 'succeeded') c
    WHERE sqlc.narg('queue')::text IS NOT NULL
)
SELECT j.* FROM baton.jobs_readable j
WHERE j.id = ANY(ARRAY(
    SELECT page.id FROM (
        -- No queue, and any state or succeeded: the primary key, newest
        -- first. Succeeded jobs are most of history, so a page is near.
        (SELECT id FROM baton.jobs
         WHERE sqlc.narg('queue')::text IS NULL
           AND (sqlc.narg('state')::baton.job_state IS NULL OR sqlc.narg('state')::baton.job_state = 'succeeded')
           AND (sqlc.narg('state')::baton.job_state IS NULL OR state = sqlc.narg('state')::baton.job_state)
           AND id < @before_id::bigint
         ORDER BY id DESC
         LIMIT @max_jobs::integer)
        UNION ALL
        -- Waiting, dead and canceled jobs: jobs_queue_state_idx, one walk
        -- per (queue, state) pair the filters leave.
        (SELECT w.id
         FROM unnest(CASE WHEN sqlc.narg('queue')::text IS NULL THEN ARRAY(SELECT name FROM baton.queues)
                          ELSE ARRAY[sqlc.narg('queue')::text] END) q(name)
         CROSS JOIN unnest(CASE WHEN sqlc.narg('state')::baton.job_state IS NULL THEN '{scheduled,available,retrying,dead,canceled}'::baton.job_state[]
                                ELSE ARRAY[sqlc.narg('state')::baton.job_state] END) s(state)
         CROSS JOIN LATERAL (
             SELECT id FROM baton.jobs
             WHERE queue = q.name AND state = s.state AND state NOT IN ('running', 'succeeded')
               AND id < @before_id::bigint
             ORDER BY id DESC
             LIMIT @max_jobs::integer
         ) w
         WHERE (sqlc.narg('queue')::text IS NOT NULL OR sqlc.narg('state')::baton.job_state IS NOT NULL) AND s.state NOT IN ('running', 'succeeded'))
        UNION ALL
        -- Running jobs: jobs_running_idx, as long as the jobs in flight.
        (SELECT id FROM baton.jobs
         WHERE state = 'running'
           AND ((sqlc.narg('state')::baton.job_state IS NULL AND sqlc.narg('queue')::text IS NOT NULL) OR sqlc.narg('state')::baton.job_state = 'running')
           AND (sqlc.narg('queue')::text IS NULL OR queue = sqlc.narg('queue')::text)
           AND id < @before_id::bigint
         ORDER BY id DESC
         LIMIT @max_jobs::integer)
        UNION ALL
        -- One queue's succeeded jobs, when it has fewer than 10,000 (the
        -- counters say, deltas included, so exactly): newest finished first
        -- from jobs_finished_idx, at most those 10,000, then sorted. The
        -- limit also keeps a generic plan, which cannot know the queue is
        -- small, from choosing to scan the table.
        (SELECT f.id FROM (
             SELECT id FROM baton.jobs
             WHERE queue = sqlc.narg('queue')::text AND state = 'succeeded'
             ORDER BY queue DESC, state DESC, finished_at DESC
             LIMIT 10000) f
         WHERE sqlc.narg('queue')::text IS NOT NULL AND (sqlc.narg('state')::baton.job_state IS NULL OR sqlc.narg('state')::baton.job_state = 'succeeded')
           AND (SELECT n FROM succeeded) < 10000
           AND f.id < @before_id::bigint
         ORDER BY f.id DESC
         LIMIT @max_jobs::integer)
        UNION ALL
        -- ...and when it has more: the primary key, newest first, where they
        -- are dense enough to fill a page soon. (Comparing expressions keeps
        -- the planner from reading all of them through an index to sort.)
        (SELECT id FROM baton.jobs
         WHERE queue || '' = sqlc.narg('queue')::text AND state::text = 'succeeded' AND id < @before_id::bigint
           AND sqlc.narg('queue')::text IS NOT NULL AND (sqlc.narg('state')::baton.job_state IS NULL OR sqlc.narg('state')::baton.job_state = 'succeeded')
           AND (SELECT n FROM succeeded) >= 10000
         ORDER BY id DESC
         LIMIT @max_jobs::integer)
    ) page
    ORDER BY page.id DESC
    LIMIT @max_jobs::integer))
ORDER BY j.id DESC;

-- name: JobListByTag :many
-- The jobs with a tag, newest first, after the keyset cursor (ids below
-- before_id), in a queue and a state when they are given: one walk of the
-- tag's index (job_tags), which stops when the page is full; the filters
-- read each job it passes.
SELECT j.* FROM baton.jobs_readable j
WHERE j.id = ANY(ARRAY(
    SELECT t.job_id FROM baton.job_tags t
    JOIN LATERAL (SELECT queue, state FROM baton.jobs WHERE id = t.job_id OFFSET 0) b ON true
    WHERE t.tag = @tag::text AND t.job_id < @before_id::bigint
      AND (sqlc.narg('queue')::text IS NULL OR b.queue = sqlc.narg('queue')::text)
      AND (sqlc.narg('state')::baton.job_state IS NULL OR b.state = sqlc.narg('state')::baton.job_state)
    ORDER BY t.job_id DESC
    LIMIT @max_jobs::integer))
ORDER BY j.id DESC;

-- name: JobNoteClaims :exec
-- Writes the claims of jobs whose own timeout or lease the worker capped as
-- history rows of their own, each with its note; fenced by the lease token,
-- as every write after a claim. (Other claims write no row: baton.job_history
-- implies them, and shows these in their place.)
INSERT INTO baton.job_events (job_id, at, from_state, to_state, attempt, lease_token, worker, note)
SELECT j.id, j.started_at,
       coalesce((SELECT e.to_state FROM baton.job_events e WHERE e.job_id = j.id ORDER BY e.id DESC LIMIT 1), 'available'),
       'running', j.attempts, j.lease_token, j.leased_by, n.note
FROM (SELECT unnest(@ids::bigint[]) AS id, unnest(@lease_tokens::bigint[]) AS lease_token, unnest(@notes::text[]) AS note,
             'running'::baton.job_state AS state -- the state each job must be in (see JobHeartbeat)
      OFFSET 0) n
JOIN baton.jobs j ON j.id = n.id AND j.lease_token = n.lease_token AND j.state = n.state;

-- name: JobChildren :many
-- The jobs a job handed off, in order: a fan-out's in its order, a join
-- (parent_seq -1) last.
SELECT id FROM baton.jobs WHERE parent_id = @parent_id::bigint ORDER BY parent_seq < 0, parent_seq, id;

-- name: FanOutPending :one
-- How many of a job's fan-out have not yet succeeded: what its join waits
-- for. No row: no fan-out, or its join is done.
SELECT pending, children FROM baton.fan_outs WHERE parent_id = @parent_id::bigint;

-- name: JobLineage :many
-- A job's whole journey for the dashboard: up to its root through parent_id,
-- then every job handed off from the root, depth by depth (bounded).
WITH RECURSIVE up AS (
    SELECT j.id, j.parent_id, 0 AS hops FROM baton.jobs j WHERE j.id = @id::bigint
    UNION ALL
    SELECT p.id, p.parent_id, up.hops + 1 FROM baton.jobs p JOIN up ON p.id = up.parent_id WHERE up.hops < 100
), down AS (
    SELECT j.id, j.parent_id, j.queue, j.state, 0 AS depth
    FROM baton.jobs j
    WHERE j.id = (SELECT up.id FROM up ORDER BY up.hops DESC LIMIT 1)
    UNION ALL
    SELECT c.id, c.parent_id, c.queue, c.state, down.depth + 1
    FROM baton.jobs c JOIN down ON c.parent_id = down.id
    WHERE down.depth < 100
)
SELECT id, parent_id, queue, state, depth::integer AS depth FROM down ORDER BY depth, id LIMIT 500;

-- name: JobHeld :one
-- Where a job stands against a lease: after a handler that called
-- worker.CompleteTx or FailTx, whether that commit ended the lease's run
-- (ended_as: the state its history row moved it to, written by this worker
-- and not the reaper), was rolled back with the caller's transaction (still
-- running under the lease), or the lease moved on. A success is the job's
-- row's to say (it records its success, and a succeeded job never changes);
-- anything else the stored history's: a failure retried at once may be
-- claimed again (a new lease) before the worker reads.
SELECT j.state, j.lease_token = @lease_token::bigint AS ours,
       coalesce(CASE WHEN j.state = 'succeeded' AND j.lease_token = @lease_token::bigint AND j.completed_by = @worker_id::text
                     THEN 'succeeded' END, -- the success the row records (migration 28)
                (SELECT e.to_state::text FROM baton.job_events e
                 WHERE e.job_id = j.id AND e.lease_token = @lease_token::bigint AND e.from_state = 'running'
                   AND e.worker = @worker_id::text AND coalesce(e.error, '') NOT LIKE 'lease expired%'
                 ORDER BY e.id DESC LIMIT 1), '')::text AS ended_as
FROM baton.jobs j WHERE j.id = @id;
