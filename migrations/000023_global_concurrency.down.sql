ALTER TABLE baton.queues DROP COLUMN global_concurrency;
