-- A stage that has caught up sets an alarm for its queue's earliest job that
-- is not due yet (delayed or retrying): JobNextDue reads it here in one probe.
-- Due-now jobs ('available') are not in it, so submits of immediate jobs and
-- claims of them write nothing to it.
CREATE INDEX jobs_next_due_idx ON baton.jobs (queue, run_at) WHERE state IN ('scheduled', 'retrying');
