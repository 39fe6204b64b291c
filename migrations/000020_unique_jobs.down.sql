DROP FUNCTION baton.unique_key(text, bigint);
DROP INDEX baton.jobs_unique_idx;
ALTER TABLE baton.jobs DROP COLUMN unique_key, DROP COLUMN unique_states;
