-- W3C trace context (the traceparent header's value) carried by each job, so
-- one trace follows a job through every stage. NULL when tracing is off.
ALTER TABLE baton.jobs ADD COLUMN trace_parent text CHECK (length(trace_parent) <= 128);
