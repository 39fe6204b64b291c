DROP FUNCTION baton.admit(text, bigint);
ALTER TABLE baton.queues DROP COLUMN max_backlog;
