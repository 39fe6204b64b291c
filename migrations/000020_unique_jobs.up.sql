-- Unique jobs: a submit with a unique_key creates nothing while a job of its
-- queue with the same key is in one of its unique_states (by default the
-- states of a job not yet done); it gets that job back. The index holds only
-- such jobs: a job leaves it when it leaves its unique states (the predicate
-- reads the row's own states), and a job without a key never enters it. A
-- key with unique_for is stored with its time bucket (baton.unique_key), as
-- River's ByPeriod: now() cannot sit in an index predicate. Both columns are
-- NULL for other jobs, which costs their rows nothing.
ALTER TABLE baton.jobs
    ADD COLUMN unique_key text,
    ADD COLUMN unique_states baton.job_state[];
COMMENT ON COLUMN baton.jobs.unique_key IS
    'The unique key the job was submitted with (and its time bucket, with unique_for); NULL for other jobs.';
COMMENT ON COLUMN baton.jobs.unique_states IS
    'The states in which the job keeps others with its unique_key out of its queue.';
CREATE UNIQUE INDEX jobs_unique_idx ON baton.jobs (queue, unique_key)
    WHERE unique_key IS NOT NULL AND state = ANY (unique_states);

-- The key a unique job is stored under: with unique_for_ms, the key and the
-- bucket of that length that now() falls in ("\x1f" apart: keys hold no
-- control characters).
CREATE FUNCTION baton.unique_key(key text, unique_for_ms bigint) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN unique_for_ms > 0
                THEN key || chr(31) || floor(extract(epoch FROM now()) * 1000 / unique_for_ms)::bigint
                ELSE key END
$$;
