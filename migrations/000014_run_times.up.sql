-- Reports you can trust: each attempt's own wait and run time, journeys'
-- end-to-end times, numbers that say what they count, and the reports users
-- ask for (docs/reports.md).
--
-- A job's started_at and finished_at are statement times: a whole claim
-- batch shares one, a whole grouped completion another, so finished_at -
-- started_at measured batches, not handlers. The row that ends an attempt
-- now records the attempt's own facts:
--   due_at: when the attempt became due (the job's run_at when it was
--           claimed), so that every attempt's wait is claimed_at - due_at,
--           not only the last one's;
--   run_us: how long its handler ran, in microseconds of the worker's
--           monotonic clock (a duration: leases and due times stay on the
--           database's clock). Set by successes and failures; NULL where no
--           handler outcome was recorded (lease lost, released, canceled).
-- Rows written before this migration have neither: the views built on
-- baton.attempts leave them out.
ALTER TABLE baton.job_events
    ADD COLUMN due_at timestamptz,
    ADD COLUMN run_us bigint;
COMMENT ON COLUMN baton.job_events.due_at IS
    'For a change out of running: when the attempt it ends became due (the job''s run_at at its claim).';
COMMENT ON COLUMN baton.job_events.run_us IS
    'For a success or a failure: how long the handler ran, in microseconds of the worker''s monotonic clock.';

-- Where a journey began, on every job of it: its root (the job a producer
-- submitted) and when that was submitted, copied by each hand-off, so that
-- end-to-end times need no walk up the lineage and survive the root's
-- deletion by retention. NULL on a root itself (it is its own root, submitted
-- at its created_at), and on jobs handed off before this migration.
ALTER TABLE baton.jobs
    ADD COLUMN root_id bigint,
    ADD COLUMN root_created_at timestamptz;
COMMENT ON COLUMN baton.jobs.root_id IS
    'The journey''s root job (the one a producer submitted); NULL on the root itself.';
COMMENT ON COLUMN baton.jobs.root_created_at IS
    'When the journey''s root job was submitted; NULL on the root itself (its created_at).';

-- attempts: one row per attempt that ended, with what became of it. It is
-- the ground the per-attempt reports stand on.
--   outcome: succeeded or failed (the handler returned; these are the
--            "attempts" every report counts), lease_lost (reaped: the worker
--            died, froze or lost the database), released (given back at
--            shutdown, not counted), canceled (while it ran).
--   wait_seconds: from due to claimed; run_seconds: the handler's own time;
--   e2e_seconds: for a success, from its journey's submit to this success.
CREATE VIEW baton.attempts AS
SELECT e.job_id, j.queue, e.attempt, e.worker,
       (CASE WHEN e.to_state = 'succeeded' THEN 'succeeded'
             WHEN e.to_state = 'canceled' THEN 'canceled'
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
    SELECT queue, parent_id, root_created_at, created_at FROM baton.jobs WHERE id = e.job_id OFFSET 0
) j
WHERE e.from_state = 'running' AND e.due_at IS NOT NULL;

-- stage_latency: per queue, over the attempts whose handler returned in the
-- window (default 1 hour): their wait (due -> claimed) and run time (the
-- handler's own clock), and for the successes among them the time since
-- their journey was submitted. Seconds.
DROP VIEW baton.stage_latency;
CREATE VIEW baton.stage_latency AS
SELECT queue,
       count(*) AS attempts,
       percentile_cont(0.50) WITHIN GROUP (ORDER BY wait_seconds) AS wait_p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY wait_seconds) AS wait_p95,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY wait_seconds) AS wait_p99,
       percentile_cont(0.50) WITHIN GROUP (ORDER BY run_seconds) AS run_p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY run_seconds) AS run_p95,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY run_seconds) AS run_p99,
       count(*) FILTER (WHERE outcome = 'succeeded') AS successes,
       percentile_cont(0.50) WITHIN GROUP (ORDER BY e2e_seconds) AS e2e_p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY e2e_seconds) AS e2e_p95,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY e2e_seconds) AS e2e_p99
FROM baton.attempts
WHERE ended_at >= baton.report_since(interval '1 hour') AND outcome IN ('succeeded', 'failed')
GROUP BY queue;

-- throughput_hourly: per queue and hour of the window (default 24 hours),
-- events from the history, never current states (a job that died, was
-- re-driven and died again is two deaths): successes, retries (failed
-- attempts to run again), deaths, cancels, interruptions (attempts given
-- back without an outcome: lease lost or released) and re-drives.
DROP VIEW baton.throughput_hourly;
CREATE VIEW baton.throughput_hourly AS
SELECT j.queue, date_trunc('hour', e.at)::timestamptz AS hour,
       count(*) FILTER (WHERE e.to_state = 'succeeded') AS successes,
       count(*) FILTER (WHERE e.to_state = 'retrying') AS retries,
       count(*) FILTER (WHERE e.to_state = 'dead') AS deaths,
       count(*) FILTER (WHERE e.to_state = 'canceled') AS cancels,
       count(*) FILTER (WHERE e.to_state = 'available' AND e.from_state = 'running') AS interruptions,
       count(*) FILTER (WHERE e.to_state = 'available' AND e.from_state IN ('dead', 'canceled')) AS redrives
FROM baton.job_events e
CROSS JOIN LATERAL (SELECT queue FROM baton.jobs WHERE id = e.job_id OFFSET 0) j -- as in attempts
WHERE e.at >= baton.report_since(interval '24 hours')
  AND (e.to_state IN ('succeeded', 'retrying', 'dead', 'canceled')
       OR (e.to_state = 'available' AND e.from_state IN ('running', 'dead', 'canceled')))
GROUP BY 1, 2;

-- failures: history rows with an error in the window (default 24 hours),
-- grouped by queue and error text: failed attempts, lost leases and
-- releases. deaths counts the rows that left the job dead.
DROP VIEW baton.failures;
CREATE VIEW baton.failures AS
SELECT j.queue, e.error,
       count(*) AS attempts,
       count(DISTINCT e.job_id) AS jobs,
       count(*) FILTER (WHERE e.to_state = 'dead') AS deaths,
       min(e.at)::timestamptz AS first_seen,
       max(e.at)::timestamptz AS last_seen,
       ((array_agg(e.job_id ORDER BY e.at DESC))[1])::bigint AS last_job_id
FROM baton.job_events e
CROSS JOIN LATERAL (SELECT queue FROM baton.jobs WHERE id = e.job_id OFFSET 0) j -- as in attempts
WHERE e.at >= baton.report_since(interval '24 hours') AND e.error IS NOT NULL
GROUP BY j.queue, e.error;

-- stage_errors: per queue, over the window (default 24 hours): attempts
-- whose handler returned, how many failed and what share, leases lost, and
-- the three errors failed attempts met most.
CREATE VIEW baton.stage_errors AS
WITH per_error AS (
    SELECT queue, error,
           count(*) FILTER (WHERE outcome IN ('succeeded', 'failed')) AS attempts,
           count(*) FILTER (WHERE outcome = 'failed') AS failed,
           count(*) FILTER (WHERE outcome = 'lease_lost') AS lost
    FROM baton.attempts
    WHERE ended_at >= baton.report_since(interval '24 hours') AND outcome IN ('succeeded', 'failed', 'lease_lost')
    GROUP BY queue, error
), ranked AS (
    SELECT *, row_number() OVER (PARTITION BY queue ORDER BY failed DESC, error) AS rank FROM per_error
)
SELECT queue,
       sum(attempts)::bigint AS attempts,
       sum(failed)::bigint AS failed_attempts,
       coalesce(sum(failed) / nullif(sum(attempts), 0), 0)::float8 AS error_rate,
       sum(lost)::bigint AS lost_leases,
       coalesce(jsonb_agg(jsonb_build_object('error', error, 'attempts', failed) ORDER BY rank)
                FILTER (WHERE rank <= 3 AND failed > 0), '[]'::jsonb) AS top_errors
FROM ranked
GROUP BY queue;

-- attempts_per_job: per queue and number of attempts, the jobs that
-- succeeded or died in the window (default 24 hours) after that many
-- (counted) attempts, and their share of the queue's.
CREATE VIEW baton.attempts_per_job AS
SELECT queue, attempts,
       count(*) AS jobs,
       count(*) FILTER (WHERE state = 'succeeded') AS succeeded_jobs,
       count(*) FILTER (WHERE state = 'dead') AS dead_jobs,
       (count(*)::float8 / sum(count(*)) OVER (PARTITION BY queue))::float8 AS share
FROM baton.jobs
WHERE finished_at >= baton.report_since(interval '24 hours') AND state IN ('succeeded', 'dead')
GROUP BY queue, attempts;

-- slowest_journeys: the 100 slowest journeys that ended in the window
-- (default 1 hour), from the submit of the root to the end of the last job
-- (one that handed nothing off: it succeeded at the last stage, died or was
-- canceled), with each stage's time (created -> finished) on the way.
CREATE VIEW baton.slowest_journeys AS
WITH RECURSIVE ended AS (
    SELECT j.id, CASE WHEN j.parent_id IS NULL THEN j.id ELSE j.root_id END AS root_id,
           coalesce(j.root_created_at, j.created_at) AS submitted_at, j.finished_at, j.queue, j.state
    FROM baton.jobs j
    WHERE j.finished_at >= baton.report_since(interval '1 hour')
      AND j.state IN ('succeeded', 'dead', 'canceled')
      AND (j.parent_id IS NULL OR j.root_id IS NOT NULL)
      -- a probe of the hand-off index per job (OFFSET 0: never a join that
      -- reads the whole index)
      AND NOT EXISTS (SELECT 1 FROM baton.jobs c WHERE c.parent_id = j.id OFFSET 0)
    ORDER BY j.finished_at - coalesce(j.root_created_at, j.created_at) DESC, j.id
    LIMIT 100
), path AS (
    SELECT e.id AS end_id, j.id, j.parent_id, j.queue, j.state, j.created_at, j.finished_at, 0 AS up
    FROM ended e JOIN baton.jobs j ON j.id = e.id
    UNION ALL
    SELECT p.end_id, j.id, j.parent_id, j.queue, j.state, j.created_at, j.finished_at, p.up + 1
    FROM path p JOIN baton.jobs j ON j.id = p.parent_id
    WHERE p.up < 100
)
SELECT e.root_id::bigint AS root_id, e.id AS job_id, e.queue, e.state, e.submitted_at, e.finished_at,
       extract(epoch FROM e.finished_at - e.submitted_at)::float8 AS seconds,
       (SELECT count(*) FROM path p WHERE p.end_id = e.id) AS hops,
       (SELECT string_agg(p.queue || ' ' || to_char(extract(epoch FROM p.finished_at - p.created_at), 'FM999999990.000') || 's'
                          || CASE WHEN p.state <> 'succeeded' THEN ' (' || p.state || ')' ELSE '' END,
                          ' -> ' ORDER BY p.up DESC)
        FROM path p WHERE p.end_id = e.id)::text AS stages
FROM ended e;

-- backlog_by_priority: per queue and priority, the jobs waiting now: due
-- ones, how long the oldest of them has waited (seconds), and those not due
-- yet (delayed or waiting for a retry). Current state; the claim index
-- holds exactly these jobs.
CREATE VIEW baton.backlog_by_priority AS
SELECT queue, priority,
       count(*) FILTER (WHERE run_at <= now()) AS due_jobs,
       coalesce(extract(epoch FROM now() - min(greatest(run_at, timestamptz '0001-01-01 00:00:00+00'))
                FILTER (WHERE run_at <= now())), 0)::float8 AS oldest_due_seconds,
       count(*) FILTER (WHERE run_at > now()) AS later_jobs
FROM baton.jobs
WHERE state IN ('scheduled', 'available', 'retrying')
GROUP BY queue, priority;

-- worker_activity: per worker (the history's, since a job's leased_by names
-- a worker only while its lease lasts), over the window (default 24 hours):
-- the jobs it ran, its attempts whose handler returned and how they ended,
-- the leases it lost, released or had canceled, and its failure rate.
CREATE VIEW baton.worker_activity AS
SELECT worker,
       count(DISTINCT job_id) AS jobs,
       count(*) FILTER (WHERE outcome IN ('succeeded', 'failed')) AS attempts,
       count(*) FILTER (WHERE outcome = 'succeeded') AS successes,
       count(*) FILTER (WHERE outcome = 'failed') AS failed_attempts,
       coalesce(count(*) FILTER (WHERE outcome = 'failed')::float8
                / nullif(count(*) FILTER (WHERE outcome IN ('succeeded', 'failed')), 0), 0)::float8 AS failure_rate,
       count(*) FILTER (WHERE outcome = 'lease_lost') AS lost_leases,
       count(*) FILTER (WHERE outcome = 'released') AS releases,
       count(*) FILTER (WHERE outcome = 'canceled') AS cancels,
       min(claimed_at)::timestamptz AS first_claimed_at,
       max(ended_at)::timestamptz AS last_ended_at
FROM baton.attempts
WHERE ended_at >= baton.report_since(interval '24 hours')
GROUP BY worker;

-- pipeline_lineage as before, but each hop found by a probe of the hand-off
-- index (a hash join scanned all of jobs when the planner over-estimated the
-- window).
CREATE OR REPLACE VIEW baton.pipeline_lineage AS
WITH RECURSIVE hop AS (
    SELECT j.id AS root_id, 0 AS depth, j.id, j.parent_id, j.queue, j.state, j.attempts,
           j.created_at, j.started_at, j.finished_at
    FROM baton.jobs j
    WHERE j.created_at >= baton.report_since(interval '1 hour') AND j.parent_id IS NULL
    UNION ALL
    SELECT h.root_id, h.depth + 1, c.id, c.parent_id, c.queue, c.state, c.attempts,
           c.created_at, c.started_at, c.finished_at
    FROM hop h
    CROSS JOIN LATERAL (SELECT * FROM baton.jobs WHERE parent_id = h.id OFFSET 0) c
    WHERE h.depth < 100
)
SELECT root_id, depth, id AS job_id, parent_id, queue, state, attempts, created_at, started_at, finished_at,
       extract(epoch FROM coalesce(finished_at, now()) - created_at)::float8 AS seconds
FROM hop;

-- job_history gains each attempt's handler run time.
CREATE OR REPLACE VIEW baton.job_history AS
SELECT job_id,
       (row_number() OVER w)::integer AS seq,
       at,
       (CASE WHEN implied_claim THEN lag(to_state) OVER w ELSE from_state END)::baton.job_state AS from_state,
       to_state, attempt, lease_token, worker, error,
       (run_us / 1e6)::float8 AS run_seconds
FROM (
    SELECT e.job_id, e.at, e.from_state, e.to_state, e.attempt, e.lease_token, e.worker, e.error, e.run_us,
           false AS implied_claim, 1 AS part, e.id AS ord, 1 AS sub
    FROM baton.job_events e
    UNION ALL
    -- the claim of each attempt that has ended
    SELECT e.job_id, e.claimed_at, NULL, 'running', e.attempt, e.lease_token, e.worker, NULL, NULL,
           true, 1, e.id, 0
    FROM baton.job_events e
    WHERE e.claimed_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM baton.job_events c
                      WHERE c.job_id = e.job_id AND c.to_state = 'running' AND c.lease_token = e.lease_token)
    UNION ALL
    -- the claim of the attempt running now
    SELECT j.id, j.started_at, NULL, 'running', j.attempts, j.lease_token, j.leased_by, NULL, NULL,
           true, 2, 0, 0
    FROM baton.jobs j
    WHERE j.state = 'running'
      AND NOT EXISTS (SELECT 1 FROM baton.job_events c
                      WHERE c.job_id = j.id AND c.to_state = 'running' AND c.lease_token = j.lease_token)
    UNION ALL
    -- the creation of a handed-off job
    SELECT j.id, j.created_at, NULL, 'available', 0, 0, NULL, NULL, NULL,
           false, 0, 0, 0
    FROM baton.jobs j
    WHERE j.parent_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM baton.job_events c WHERE c.job_id = j.id AND c.from_state IS NULL)
) entries
WINDOW w AS (PARTITION BY job_id ORDER BY part, ord, sub);

-- The views dropped and made again lost their grants: give the reporting
-- role (docs/reader-role.sql) the views it had and the new ones.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'baton_reader') THEN
        GRANT SELECT ON baton.stage_latency, baton.throughput_hourly, baton.failures, baton.attempts,
            baton.stage_errors, baton.attempts_per_job, baton.slowest_journeys, baton.backlog_by_priority,
            baton.worker_activity TO baton_reader;
    END IF;
END $$;
