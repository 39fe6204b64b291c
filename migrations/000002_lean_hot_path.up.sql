-- Fewer index writes per job on the hot path (measured in docs/benchmarks.md).
--
-- jobs_handoff_once (parent_id, parent_seq) already serves lookups by parent,
-- so the separate parent index only cost a write per hand-off and per update.
DROP INDEX baton.jobs_parent_idx;
-- Nothing looks history up by its id: readers go by job (job_events_job_idx)
-- or by time. The id stays a unique identity; only its index goes.
ALTER TABLE baton.job_events DROP CONSTRAINT job_events_pkey;
