-- The system column the claims read, for sqlc only: PostgreSQL gives every
-- table a ctid (the row's place), which sqlc's catalog does not know. The
-- claims delete the waiting rows they locked by it (JobClaim).
ALTER TABLE baton.waiting_jobs ADD COLUMN ctid tid;
