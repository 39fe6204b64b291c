-- History with one row fewer per job on the hot path (issue 26). A success
-- no longer appends a job_events row: the job's row, which the completion
-- writes anyway, records everything that row said, and baton.job_history,
-- baton.attempts and baton.throughput_hourly show it as before (so do the
-- views built on attempts). As migration 7 did for claims:
--
-- * completed_by: the worker whose completion succeeded the job (leased_by
--   still names a worker only while a lease lasts);
-- * run_us: how long that attempt's handler ran;
-- * the attempt's claim and due time are the row's started_at and run_at
--   (a success leaves both as they were), its end finished_at, its
--   attempt and lease the row's attempts and lease_token.
--
-- A succeeded job is never re-driven (JobRetry takes dead and canceled
-- jobs only), so what the row records stays true until retention deletes
-- the job with its history. Jobs that succeeded before this migration (or
-- under a binary before it, during a rolling upgrade) have a stored success
-- and completed_by NULL: the views imply only what no stored row records.
-- Only adds columns and replaces views: compatible_since stays.
ALTER TABLE baton.jobs
    ADD COLUMN completed_by text,
    ADD COLUMN run_us bigint;
COMMENT ON COLUMN baton.jobs.completed_by IS
    'For a succeeded job: the worker that completed it (its success has no job_events row; baton.job_history implies it). NULL for other jobs and for successes stored as rows.';
COMMENT ON COLUMN baton.jobs.run_us IS
    'With completed_by: how long the successful attempt''s handler ran, in microseconds of the worker''s monotonic clock.';

CREATE OR REPLACE VIEW baton.job_history AS
SELECT job_id,
       (row_number() OVER w)::integer AS seq,
       at,
       (CASE WHEN implied_claim THEN lag(to_state) OVER w ELSE from_state END)::baton.job_state AS from_state,
       to_state, attempt, lease_token, worker, error,
       (run_us / 1e6)::float8 AS run_seconds,
       note
FROM (
    SELECT e.job_id, e.at, e.from_state, e.to_state, e.attempt, e.lease_token, e.worker, e.error, e.run_us, e.note,
           false AS implied_claim, 1 AS part, e.id AS ord, 1 AS sub
    FROM baton.job_events e
    UNION ALL
    -- the claim of each attempt that has ended with a stored row
    SELECT e.job_id, e.claimed_at, NULL, 'running', e.attempt, e.lease_token, e.worker, NULL, NULL, NULL,
           true, 1, e.id, 0
    FROM baton.job_events e
    WHERE e.claimed_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM baton.job_events c
                      WHERE c.job_id = e.job_id AND c.to_state = 'running' AND c.lease_token = e.lease_token)
    UNION ALL
    -- the claim of the attempt running now, or of the success the row records
    SELECT j.id, j.started_at, NULL, 'running', j.attempts, j.lease_token, coalesce(j.completed_by, j.leased_by), NULL, NULL, NULL,
           true, 2, 0, 0
    FROM baton.jobs j
    WHERE (j.state = 'running' OR (j.state = 'succeeded' AND j.completed_by IS NOT NULL))
      AND NOT EXISTS (SELECT 1 FROM baton.job_events c
                      WHERE c.job_id = j.id AND c.to_state = 'running' AND c.lease_token = j.lease_token)
    UNION ALL
    -- the success the row records
    SELECT j.id, j.finished_at, 'running', 'succeeded', j.attempts, j.lease_token, j.completed_by, NULL, j.run_us, NULL,
           false, 2, 0, 1
    FROM baton.jobs j
    WHERE j.state = 'succeeded' AND j.completed_by IS NOT NULL
    UNION ALL
    -- the creation of a handed-off job
    SELECT j.id, j.created_at, NULL, 'available', 0, 0, NULL, NULL, NULL, NULL,
           false, 0, 0, 0
    FROM baton.jobs j
    WHERE j.parent_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM baton.job_events c WHERE c.job_id = j.id AND c.from_state IS NULL)
) entries
WINDOW w AS (PARTITION BY job_id ORDER BY part, ord, sub);

CREATE OR REPLACE VIEW baton.attempts AS
SELECT e.job_id, j.queue, e.attempt, e.worker,
       (CASE WHEN e.to_state = 'succeeded' THEN 'succeeded'
             WHEN e.to_state = 'canceled' THEN 'canceled'
             WHEN e.to_state IN ('scheduled', 'available') AND e.error LIKE 'snoozed %' THEN 'snoozed' -- JobSnooze
             WHEN e.run_us IS NOT NULL THEN 'failed' -- only JobFail, after a handler returned, records one
             WHEN e.error LIKE 'lease expired%' THEN 'lease_lost' -- the reaper's words (JobReap)
             ELSE 'released' END)::text AS outcome,
       e.to_state, e.due_at, e.claimed_at, e.at AS ended_at,
       extract(epoch FROM e.claimed_at - e.due_at)::float8 AS wait_seconds,
       (e.run_us / 1e6)::float8 AS run_seconds,
       (CASE WHEN e.to_state = 'succeeded' AND (j.parent_id IS NULL OR j.root_created_at IS NOT NULL)
             THEN extract(epoch FROM e.at - coalesce(j.root_created_at, j.created_at)) END)::float8 AS e2e_seconds,
       e.error
FROM baton.job_events e
CROSS JOIN LATERAL (
    -- One primary-key probe per history row, so that a report reads as much
    -- of jobs as its window holds, never the whole table. (OFFSET 0 keeps
    -- the planner from making this a join that scans jobs: it cannot see
    -- through report_since() and guesses a third of the history.)
    SELECT queue, parent_id, root_created_at, created_at, tags FROM baton.jobs WHERE id = e.job_id OFFSET 0
) j
WHERE e.from_state = 'running' AND e.due_at IS NOT NULL
  AND (baton.report_tag() IS NULL OR j.tags @> ARRAY[baton.report_tag()])
UNION ALL
-- the successes the jobs' rows record (a report's window on ended_at finds
-- them through the BRIN index on finished_at)
SELECT j.id, j.queue, j.attempts, j.completed_by, 'succeeded', j.state, j.run_at, j.started_at, j.finished_at,
       extract(epoch FROM j.started_at - j.run_at)::float8,
       (j.run_us / 1e6)::float8,
       (CASE WHEN j.parent_id IS NULL OR j.root_created_at IS NOT NULL
             THEN extract(epoch FROM j.finished_at - coalesce(j.root_created_at, j.created_at)) END)::float8,
       NULL
FROM baton.jobs j
WHERE j.state = 'succeeded' AND j.completed_by IS NOT NULL
  AND (baton.report_tag() IS NULL OR j.tags @> ARRAY[baton.report_tag()]);

CREATE OR REPLACE VIEW baton.throughput_hourly AS
SELECT c.queue, date_trunc('hour', c.at)::timestamptz AS hour,
       count(*) FILTER (WHERE c.to_state = 'succeeded') AS successes,
       count(*) FILTER (WHERE c.to_state = 'retrying') AS retries,
       count(*) FILTER (WHERE c.to_state = 'dead') AS deaths,
       count(*) FILTER (WHERE c.to_state = 'canceled') AS cancels,
       count(*) FILTER (WHERE c.to_state = 'available' AND c.from_state = 'running'
                          AND coalesce(c.error, '') NOT LIKE 'snoozed %') AS interruptions,
       count(*) FILTER (WHERE c.to_state = 'available' AND c.from_state IN ('dead', 'canceled')) AS redrives,
       count(*) FILTER (WHERE c.from_state = 'running' AND c.error LIKE 'snoozed %') AS snoozes
FROM (
    SELECT j.queue, e.at, e.from_state, e.to_state, e.error
    FROM baton.job_events e
    CROSS JOIN LATERAL (SELECT queue, tags FROM baton.jobs WHERE id = e.job_id OFFSET 0) j -- as in attempts
    WHERE e.at >= baton.report_since(interval '24 hours')
      AND (e.to_state IN ('succeeded', 'retrying', 'dead', 'canceled')
           OR (e.to_state = 'available' AND e.from_state IN ('running', 'dead', 'canceled'))
           OR (e.to_state = 'scheduled' AND e.from_state = 'running'))
      AND (baton.report_tag() IS NULL OR j.tags @> ARRAY[baton.report_tag()])
    UNION ALL
    -- the successes the jobs' rows record
    SELECT j.queue, j.finished_at, 'running', j.state, NULL
    FROM baton.jobs j
    WHERE j.state = 'succeeded' AND j.completed_by IS NOT NULL
      AND j.finished_at >= baton.report_since(interval '24 hours')
      AND (baton.report_tag() IS NULL OR j.tags @> ARRAY[baton.report_tag()])
) c
GROUP BY 1, 2;
