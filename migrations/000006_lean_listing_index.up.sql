-- The listing index leaves out running and succeeded jobs: every claim and
-- every completion rewrites the job's row (state is indexed, so the update
-- cannot be HOT), and an entry for each new version here was a quarter of
-- the hot path's index writes (docs/benchmarks.md).
--
-- Running jobs are listed through jobs_running_idx (one entry per in-flight
-- job), and succeeded jobs, the bulk of history, newest first along the
-- primary key: the listing stops after a page of matches, so it is as quick
-- as that queue's share of recent history is large.
DROP INDEX baton.jobs_queue_state_idx;
CREATE INDEX jobs_queue_state_idx ON baton.jobs (queue, state, id)
    WHERE state NOT IN ('running', 'succeeded');
