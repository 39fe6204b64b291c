-- Retention. Maintenance deletes finished jobs (with their history) once they
-- have been finished longer than their queue keeps them: per final state, the
-- queue's override here, else the defaults each replica is started with
-- (--retain-succeeded and so on). NULL takes the default; -1 keeps them
-- forever; otherwise milliseconds.
ALTER TABLE baton.queues
    ADD COLUMN retain_succeeded_ms bigint CHECK (retain_succeeded_ms >= -1),
    ADD COLUMN retain_dead_ms bigint CHECK (retain_dead_ms >= -1),
    ADD COLUMN retain_canceled_ms bigint CHECK (retain_canceled_ms >= -1);
