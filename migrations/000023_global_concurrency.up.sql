-- Global concurrency: at most this many jobs of the queue run at once, over
-- every replica. NULL takes the limit of the stage that claims (a pipeline
-- file's global_concurrency, none by default); a value here wins over the
-- files, so replicas with different files agree. A claim of a limited queue
-- holds the queue's row (FOR NO KEY UPDATE) in its transaction and claims no
-- more than the limit less the queue's running jobs, counted by the
-- statement after the lock: claims of one limited queue take turns.
-- Only adds a nullable column: compatible_since stays (binaries before it
-- run, and do not hold the limit).
ALTER TABLE baton.queues
    ADD COLUMN global_concurrency integer CHECK (global_concurrency > 0);
