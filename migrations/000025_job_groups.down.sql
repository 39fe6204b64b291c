DROP VIEW baton.jobs_readable;
CREATE VIEW baton.jobs_readable AS
SELECT id, queue, state, baton.readable(payload) AS payload, priority, run_at, attempts, max_attempts,
       lease_token, lease_expires_at, leased_by, last_error, baton.readable(result) AS result, parent_id,
       parent_seq, created_at, started_at, finished_at, trace_parent, lost_leases, isolated, alone_since,
       root_id, root_created_at, tags, timeout_ms, lease_ms
FROM baton.jobs;
COMMENT ON VIEW baton.jobs_readable IS
    'baton.jobs with payload and result NULL where they cannot be read (baton.readable).';
ALTER TABLE baton.jobs DROP COLUMN group_key;
