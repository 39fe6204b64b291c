-- Failures that are the worker's, not the job's. A handler that fails
-- because its worker ran out of a resource (no file descriptors: a flood of
-- connections to the worker's metrics port made every exec handler fail
-- with "pipe2: too many open files"; no memory) used up its job's attempts
-- and ended it dead. Up to a bound per job, such a failure is retried
-- without counting an attempt (queries/jobs.sql, JobFail); worker_faults
-- counts them, so that the job still reaches a terminal state.
ALTER TABLE baton.job_faults ADD COLUMN worker_faults integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN baton.job_faults.worker_faults IS
    'Failed attempts not counted because the worker ran out of a resource (file descriptors, memory); bounded per job.';
