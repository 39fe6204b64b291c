DROP INDEX baton.jobs_handoff_once;
ALTER TABLE baton.jobs ADD CONSTRAINT jobs_handoff_once UNIQUE (parent_id, parent_seq);
