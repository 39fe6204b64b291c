ALTER TABLE baton.job_events ADD PRIMARY KEY (id);
CREATE INDEX jobs_parent_idx ON baton.jobs (parent_id) WHERE parent_id IS NOT NULL;
