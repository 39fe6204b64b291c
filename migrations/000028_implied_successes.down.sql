-- Stores the successes the jobs' rows record as job_events rows again, as
-- the binaries before migration 28 wrote them, then puts back the views of
-- migration 21 and drops the columns.
INSERT INTO baton.job_events (job_id, at, from_state, to_state, attempt, lease_token, worker, claimed_at, due_at, run_us)
SELECT id, finished_at, 'running', 'succeeded', attempts, lease_token, completed_by, started_at, run_at, run_us
FROM baton.jobs
WHERE state = 'succeeded' AND completed_by IS NOT NULL
ORDER BY finished_at, id;

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
    -- the claim of each attempt that has ended
    SELECT e.job_id, e.claimed_at, NULL, 'running', e.attempt, e.lease_token, e.worker, NULL, NULL, NULL,
           true, 1, e.id, 0
    FROM baton.job_events e
    WHERE e.claimed_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM baton.job_events c
                      WHERE c.job_id = e.job_id AND c.to_state = 'running' AND c.lease_token = e.lease_token)
    UNION ALL
    -- the claim of the attempt running now
    SELECT j.id, j.started_at, NULL, 'running', j.attempts, j.lease_token, j.leased_by, NULL, NULL, NULL,
           true, 2, 0, 0
    FROM baton.jobs j
    WHERE j.state = 'running'
      AND NOT EXISTS (SELECT 1 FROM baton.job_events c
                      WHERE c.job_id = j.id AND c.to_state = 'running' AND c.lease_token = j.lease_token)
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
  AND (baton.report_tag() IS NULL OR j.tags @> ARRAY[baton.report_tag()]);

CREATE OR REPLACE VIEW baton.throughput_hourly AS
SELECT j.queue, date_trunc('hour', e.at)::timestamptz AS hour,
       count(*) FILTER (WHERE e.to_state = 'succeeded') AS successes,
       count(*) FILTER (WHERE e.to_state = 'retrying') AS retries,
       count(*) FILTER (WHERE e.to_state = 'dead') AS deaths,
       count(*) FILTER (WHERE e.to_state = 'canceled') AS cancels,
       count(*) FILTER (WHERE e.to_state = 'available' AND e.from_state = 'running'
                          AND coalesce(e.error, '') NOT LIKE 'snoozed %') AS interruptions,
       count(*) FILTER (WHERE e.to_state = 'available' AND e.from_state IN ('dead', 'canceled')) AS redrives,
       count(*) FILTER (WHERE e.from_state = 'running' AND e.error LIKE 'snoozed %') AS snoozes
FROM baton.job_events e
CROSS JOIN LATERAL (SELECT queue, tags FROM baton.jobs WHERE id = e.job_id OFFSET 0) j -- as in attempts
WHERE e.at >= baton.report_since(interval '24 hours')
  AND (e.to_state IN ('succeeded', 'retrying', 'dead', 'canceled')
       OR (e.to_state = 'available' AND e.from_state IN ('running', 'dead', 'canceled'))
       OR (e.to_state = 'scheduled' AND e.from_state = 'running'))
  AND (baton.report_tag() IS NULL OR j.tags @> ARRAY[baton.report_tag()])
GROUP BY 1, 2;

ALTER TABLE baton.jobs
    DROP COLUMN completed_by,
    DROP COLUMN run_us;
