UPDATE baton.jobs j SET payload = f.unreadable_payload
FROM baton.job_faults f
WHERE f.job_id = j.id AND f.unreadable_payload IS NOT NULL;
DROP TABLE baton.job_faults;
DROP VIEW baton.jobs_readable;
DROP FUNCTION baton.readable(jsonb);
