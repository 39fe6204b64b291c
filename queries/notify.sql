-- name: Listen :exec
-- Workers listen on this channel for wake-up hints: the payload lists queues
-- that just got jobs. Polling stays the source of truth.
LISTEN baton_jobs;
