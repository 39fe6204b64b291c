-- Rows that cannot be read. jsonb keeps a number such as 1e131071 in a few
-- bytes and writes all 131,072 digits each time it is read: a payload of
-- 8,300 of them is past PostgreSQL's 1 GB limit on a value's text, and every
-- statement that returns it fails. Baton refuses such payloads and results
-- now (counting numbers written out in full), but a row written before, or
-- by SQL, or damaged on disk, must cost its own job, not its queue.
--
-- A claim that meets such a row fails as a whole; the worker claims again
-- with payloads checked (baton.readable) and fails that job alone: it ends
-- dead, a poison row, and its payload moves aside to
-- baton.job_faults.unreadable_payload (its payload becomes null), so that it
-- costs no reader anything from then on. A retry moves it back.
--
-- baton.job_faults holds what went wrong with a job that was not its own
-- doing, for the few jobs it happens to: a side table, so that baton.jobs,
-- which every claim and completion writes, stays as narrow as it was (two
-- columns there cost the one-stage benchmark about 3%). Maintenance deletes
-- a job's row with the job (JobPrune).
CREATE TABLE baton.job_faults (
    job_id bigint PRIMARY KEY,
    unreadable_payload jsonb
);
COMMENT ON TABLE baton.job_faults IS
    'Faults of jobs that were not the jobs'' own; a row only for a job that had one.';
COMMENT ON COLUMN baton.job_faults.unreadable_payload IS
    'A poison row''s payload, which PostgreSQL cannot write out, moved aside (the job''s payload is null); a retry moves it back.';

-- baton.readable(v) is v, or NULL when v cannot be written out or is over
-- 64 MiB written out (four times anything Baton stores), so that no reader
-- allocates more. It writes v out to find out: readers that use it pay about
-- one more rendering of what they read.
CREATE FUNCTION baton.readable(v jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF octet_length(v::text) > 64 * 1024 * 1024 THEN
        RETURN NULL;
    END IF;
    RETURN v;
EXCEPTION WHEN program_limit_exceeded OR out_of_memory OR data_corrupted THEN
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION baton.readable(jsonb) IS
    'v, or NULL when PostgreSQL cannot write it out (over 1 GB as text, or damaged) or it is over 64 MiB as text.';

-- The jobs as the API, the dashboard and baton status show them: the
-- columns of baton.jobs before this migration, in their order, with payload
-- and result through baton.readable, so that one row that cannot be read
-- (and has not met a worker yet) fails no list.
CREATE VIEW baton.jobs_readable AS
SELECT id, queue, state, baton.readable(payload) AS payload, priority, run_at, attempts, max_attempts,
       lease_token, lease_expires_at, leased_by, last_error, baton.readable(result) AS result, parent_id,
       parent_seq, created_at, started_at, finished_at, trace_parent, lost_leases, isolated, alone_since,
       root_id, root_created_at
FROM baton.jobs;
COMMENT ON VIEW baton.jobs_readable IS
    'baton.jobs with payload and result NULL where they cannot be read (baton.readable).';
