-- Root jobs (submitted, not handed off) have no parent: keep them out of the
-- hand-off guard's index, which saves an index write at their insert and at
-- each of their state changes. Lookups by parent still use it.
ALTER TABLE baton.jobs DROP CONSTRAINT jobs_handoff_once;
CREATE UNIQUE INDEX jobs_handoff_once ON baton.jobs (parent_id, parent_seq) WHERE parent_id IS NOT NULL;
