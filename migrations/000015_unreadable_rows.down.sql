DROP VIEW baton.jobs_readable;
DROP FUNCTION baton.readable(jsonb);
UPDATE baton.jobs SET payload = unreadable_payload WHERE unreadable_payload IS NOT NULL;
ALTER TABLE baton.jobs DROP COLUMN unreadable_payload;
