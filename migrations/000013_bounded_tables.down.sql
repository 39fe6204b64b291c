DROP VIEW baton.table_health;
DROP INDEX baton.jobs_finished_idx;
