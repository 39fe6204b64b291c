DROP VIEW baton.groups;
DROP FUNCTION baton.rate_tokens(integer, integer, float8, timestamptz);
ALTER TABLE baton.queues
    DROP CONSTRAINT queues_rate_check,
    DROP COLUMN rate_count, DROP COLUMN rate_period_ms, DROP COLUMN rate_tokens, DROP COLUMN rate_at;
DROP TABLE baton.queue_groups;
ALTER TABLE baton.queues DROP COLUMN fair_clock;
DROP INDEX baton.jobs_group_due_idx;
DROP INDEX baton.jobs_group_idx;
