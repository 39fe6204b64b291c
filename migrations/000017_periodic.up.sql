-- Periodic jobs (the pipeline file's periodic: section). Each entry is a row,
-- registered by every worker whose file names it; the row keeps the entry's
-- last tick and its next, so a restart neither skips nor repeats a tick.
-- A tick is enqueued by the statement that moves last_tick forward to it,
-- under the row's lock (queries/periodic.sql, PeriodicEnqueue): last_tick
-- only grows, so however many replicas run the file, each tick makes one job,
-- whatever a replica's clock or file says.
CREATE TABLE baton.periodic_entries (
    name text PRIMARY KEY,
    queue text NOT NULL,
    schedule text NOT NULL,
    timezone text NOT NULL DEFAULT 'UTC',
    payload jsonb NOT NULL DEFAULT '{}',
    next_tick timestamptz NOT NULL,
    last_tick timestamptz,
    last_job_id bigint,
    registered_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE baton.periodic_entries IS
    'The periodic entries of the pipeline files: when each ticked last and ticks next.';
COMMENT ON COLUMN baton.periodic_entries.registered_at IS
    'When a worker whose file names the entry last started.';

-- baton report periodic: each entry, its last and next tick, and the job its
-- last tick made. overdue is how long past its next tick an entry is (no
-- worker with it running, or all of them behind); 0 when on time.
CREATE VIEW baton.periodic AS
SELECT p.name, p.queue, p.schedule, p.timezone, p.last_tick, p.next_tick, p.last_job_id,
       j.state AS last_job_state,
       greatest(extract(epoch FROM now() - p.next_tick), 0)::float8 AS overdue_seconds,
       p.registered_at
FROM baton.periodic_entries p
LEFT JOIN baton.jobs j ON j.id = p.last_job_id;
COMMENT ON VIEW baton.periodic IS
    'Each periodic entry with its last and next tick, the state of the job its last tick made, and how overdue it is.';
