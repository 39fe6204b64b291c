-- name: Listen :exec
-- Workers listen on this channel for wake-up hints: the payload lists the
-- queues that just got jobs due now (a submit, a re-drive, a resume, a
-- promotion), each written "queue@" when some are due later (a delayed
-- submit, a retry): a stage then asks when (JobNextDue) and sets an alarm.
-- Polling stays the source of truth.
LISTEN baton_jobs;
