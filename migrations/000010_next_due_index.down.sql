DROP INDEX baton.jobs_next_due_idx;
