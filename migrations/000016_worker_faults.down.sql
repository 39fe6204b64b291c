ALTER TABLE baton.jobs DROP COLUMN worker_faults;
