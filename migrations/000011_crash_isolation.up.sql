-- Crash isolation. A job whose lease expired while it ran beside other jobs
-- (its worker died, froze or lost the database) may have been a bystander
-- of another job that killed the worker: the loss is not counted as its
-- attempt. It is marked isolated instead, and runs next alone on a replica
-- (normal claims skip it). Only a lease lost while it ran alone counts.
--   lost_leases: how many times a lease of this job expired while it ran.
--   isolated:    its next run must be alone on its replica.
--   alone_since: when its current run started alone; NULL while the worker
--                that holds it drains its other jobs (a lease lost then
--                costs the job nothing).
ALTER TABLE baton.jobs
    ADD COLUMN lost_leases integer NOT NULL DEFAULT 0,
    ADD COLUMN isolated boolean NOT NULL DEFAULT false,
    ADD COLUMN alone_since timestamptz;

-- The isolated claim's path: isolated jobs waiting to run (there are few).
CREATE INDEX jobs_isolated_idx ON baton.jobs (queue, priority, run_at, id)
    WHERE isolated AND state IN ('scheduled', 'available', 'retrying');
