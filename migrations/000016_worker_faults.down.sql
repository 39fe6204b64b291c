ALTER TABLE baton.job_faults DROP COLUMN worker_faults;
