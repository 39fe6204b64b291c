ALTER TABLE baton.jobs DROP COLUMN trace_parent;
