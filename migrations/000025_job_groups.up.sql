-- Groups (tenants): a job may name its group (a customer, an account), kept
-- by the jobs it hands off; flow control per group (group_concurrency, fair
-- shares) reads it. NULL for no group. Only adds: compatible_since stays.
ALTER TABLE baton.jobs
    ADD COLUMN group_key text CHECK (group_key <> '' AND length(group_key) <= 128);

CREATE OR REPLACE VIEW baton.jobs_readable AS
SELECT id, queue, state, baton.readable(payload) AS payload, priority, run_at, attempts, max_attempts,
       lease_token, lease_expires_at, leased_by, last_error, baton.readable(result) AS result, parent_id,
       parent_seq, created_at, started_at, finished_at, trace_parent, lost_leases, isolated, alone_since,
       root_id, root_created_at, tags, timeout_ms, lease_ms, group_key
FROM baton.jobs;
