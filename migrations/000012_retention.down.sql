ALTER TABLE baton.queues DROP COLUMN retain_canceled_ms, DROP COLUMN retain_dead_ms, DROP COLUMN retain_succeeded_ms;
