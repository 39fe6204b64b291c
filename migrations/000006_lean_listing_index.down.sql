DROP INDEX baton.jobs_queue_state_idx;
CREATE INDEX jobs_queue_state_idx ON baton.jobs (queue, state, id);
