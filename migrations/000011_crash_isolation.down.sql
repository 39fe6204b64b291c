DROP INDEX baton.jobs_isolated_idx;
ALTER TABLE baton.jobs DROP COLUMN alone_since, DROP COLUMN isolated, DROP COLUMN lost_leases;
