-- History with fewer rows on the hot path. A claim no longer appends a
-- job_events row, nor does a hand-off for the job it creates: both are
-- implied by rows that are written anyway, and baton.job_history shows them.
--
-- * A claim is implied by the event that ends its attempt (completion,
--   failure, reaping, release or cancel), which now records claimed_at, or,
--   while the attempt runs, by the job row (started_at, lease_token,
--   leased_by).
-- * A handed-off job (parent_id set) was created available at created_at.
--
-- That saves two of a job's four history rows per stage (measured in
-- docs/benchmarks.md). Rows written before this migration stay as they
-- were; the view implies only what no stored row records.
ALTER TABLE baton.job_events ADD COLUMN claimed_at timestamptz;
COMMENT ON COLUMN baton.job_events.claimed_at IS
    'For a change out of running: when the attempt it ends was claimed (the claim itself has no row).';

-- job_history: every state change of every job, in order (seq counts from 1
-- per job); the stored changes of job_events plus the implied ones.
CREATE VIEW baton.job_history AS
SELECT job_id,
       (row_number() OVER w)::integer AS seq,
       at,
       (CASE WHEN implied_claim THEN lag(to_state) OVER w ELSE from_state END)::baton.job_state AS from_state,
       to_state, attempt, lease_token, worker, error
FROM (
    SELECT e.job_id, e.at, e.from_state, e.to_state, e.attempt, e.lease_token, e.worker, e.error,
           false AS implied_claim, 1 AS part, e.id AS ord, 1 AS sub
    FROM baton.job_events e
    UNION ALL
    -- the claim of each attempt that has ended
    SELECT e.job_id, e.claimed_at, NULL, 'running', e.attempt, e.lease_token, e.worker, NULL,
           true, 1, e.id, 0
    FROM baton.job_events e
    WHERE e.claimed_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM baton.job_events c
                      WHERE c.job_id = e.job_id AND c.to_state = 'running' AND c.lease_token = e.lease_token)
    UNION ALL
    -- the claim of the attempt running now
    SELECT j.id, j.started_at, NULL, 'running', j.attempts, j.lease_token, j.leased_by, NULL,
           true, 2, 0, 0
    FROM baton.jobs j
    WHERE j.state = 'running'
      AND NOT EXISTS (SELECT 1 FROM baton.job_events c
                      WHERE c.job_id = j.id AND c.to_state = 'running' AND c.lease_token = j.lease_token)
    UNION ALL
    -- the creation of a handed-off job
    SELECT j.id, j.created_at, NULL, 'available', 0, 0, NULL, NULL,
           false, 0, 0, 0
    FROM baton.jobs j
    WHERE j.parent_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM baton.job_events c WHERE c.job_id = j.id AND c.from_state IS NULL)
) entries
WINDOW w AS (PARTITION BY job_id ORDER BY part, ord, sub);
