-- name: PeriodicRegister :exec
-- Registers a periodic entry of a worker's file, or updates it: a changed
-- schedule or time zone starts from next_tick (the first tick after the
-- database's now(), worked out by the worker); otherwise the stored next
-- tick stands, so a restart neither skips nor repeats one.
INSERT INTO baton.periodic_entries AS p (name, queue, schedule, timezone, payload, next_tick)
VALUES (@name::text, @queue::text, @schedule::text, @timezone::text, @payload::jsonb, @next_tick::timestamptz)
ON CONFLICT (name) DO UPDATE
SET queue = excluded.queue, payload = excluded.payload, registered_at = now(),
    schedule = excluded.schedule, timezone = excluded.timezone,
    next_tick = CASE WHEN p.schedule = excluded.schedule AND p.timezone = excluded.timezone
                     THEN p.next_tick ELSE excluded.next_tick END;

-- name: PeriodicDue :many
-- The named entries and the database's now(), to see which are due.
SELECT name, next_tick, now()::timestamptz AS now
FROM baton.periodic_entries
WHERE name = ANY(@names::text[]);

-- name: PeriodicEnqueue :one
-- Enqueues tick of entry name, and moves the entry on to next_tick: one
-- statement, under the entry's lock. Only the statement that moves
-- last_tick forward to tick makes its job, so a tick makes one job however
-- many replicas try it (the others find the row locked, or moved on). The
-- job is due at its tick (its run_at), created with its history row, and a
-- wake-up hint names its queue. No row: another replica took the tick.
WITH due AS MATERIALIZED (
    SELECT name, queue, payload FROM baton.periodic_entries
    WHERE name = @name::text AND next_tick = @tick::timestamptz AND (last_tick IS NULL OR last_tick < @tick::timestamptz)
    FOR UPDATE SKIP LOCKED
), new_queue AS (
    INSERT INTO baton.queues (name) SELECT queue FROM due ON CONFLICT DO NOTHING
), inserted AS (
    INSERT INTO baton.jobs (queue, state, payload, run_at)
    SELECT queue, 'available', payload, @tick::timestamptz FROM due
    RETURNING id, queue, state
), events AS (
    INSERT INTO baton.job_events (job_id, to_state, attempt, lease_token)
    SELECT id, state, 0, 0 FROM inserted
), advanced AS (
    UPDATE baton.periodic_entries p
    SET last_tick = @tick::timestamptz, next_tick = @next_tick::timestamptz, last_job_id = i.id
    FROM inserted i
    WHERE p.name = @name::text
), notified AS (
    SELECT count(pg_notify('baton_jobs', queue)) AS n FROM inserted
)
SELECT inserted.id FROM inserted CROSS JOIN notified;

-- name: DatabaseNow :one
-- The database's clock, which decides when a periodic entry is due.
SELECT now()::timestamptz AS now;
