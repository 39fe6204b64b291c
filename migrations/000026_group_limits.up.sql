-- Flow control per group and by rate (issue 25).
--
-- A stage with group_concurrency or fair claims through the groups that have
-- unfinished jobs (JobClaimGrouped). Both indexes hold grouped jobs only, so
-- a job without a group (every job of a queue that does not use them) writes
-- nothing more. jobs_group_idx walks the groups in order (a loose index scan,
-- one probe per group) and reads a group's first unfinished jobs in submit
-- order: the window group_concurrency admits. jobs_group_due_idx reads a
-- group's due jobs by priority: what a fair claim takes from each group.
CREATE INDEX jobs_group_idx ON baton.jobs (queue, group_key, id)
    WHERE group_key IS NOT NULL AND state IN ('scheduled', 'available', 'retrying', 'running');
CREATE INDEX jobs_group_due_idx ON baton.jobs (queue, group_key, priority, run_at, id)
    WHERE group_key IS NOT NULL AND state IN ('scheduled', 'available', 'retrying');

-- A group's place in a fair stage's turns (start-time fair queueing; see
-- JobClaimGrouped): next_tag is the virtual time its next job starts at,
-- against the queue's fair_clock; weight its share (NULL: 1, the default),
-- so that a group of weight 3 gets three claims for each of a group of
-- weight 1 while both have due jobs. Jobs without a group are tagged under
-- the group ''. A row without a weight whose tag the clock has passed says
-- nothing a missing row would not: maintenance deletes those.
CREATE TABLE baton.queue_groups (
    queue     text    NOT NULL,
    group_key text    NOT NULL CHECK (length(group_key) <= 128),
    weight    integer CHECK (weight BETWEEN 1 AND 1000),
    next_tag  float8  NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, group_key)
);
ALTER TABLE baton.queues ADD COLUMN fair_clock float8 NOT NULL DEFAULT 0;

-- A queue's rate limit: at most rate_count claims per rate_period_ms, over
-- every replica; NULL takes the stage's (a pipeline file's rate_limit). The
-- bucket (rate_tokens at rate_at) is the queue's, whichever rate fills it:
-- it holds at most one second's worth of the rate (at least one claim), and
-- a claim, holding the queue's row, spends from it in database time.
ALTER TABLE baton.queues ADD COLUMN rate_count integer CHECK (rate_count > 0);
ALTER TABLE baton.queues ADD COLUMN rate_period_ms integer CHECK (rate_period_ms IN (1000, 60000));
ALTER TABLE baton.queues ADD COLUMN rate_tokens float8;
ALTER TABLE baton.queues ADD COLUMN rate_at timestamptz;
ALTER TABLE baton.queues ADD CONSTRAINT queues_rate_check CHECK ((rate_count IS NULL) = (rate_period_ms IS NULL));

-- The claims a bucket of rate_count per period_ms holds now, given what it
-- held at rate_at (NULL: a full bucket): it fills at the rate, up to one
-- second's worth (at least one claim). -1 without a rate.
CREATE FUNCTION baton.rate_tokens(count integer, period_ms integer, tokens float8, at timestamptz)
RETURNS float8 LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN count IS NULL OR period_ms IS NULL THEN -1
                ELSE least(b.burst, coalesce(tokens, b.burst)
                                    + coalesce(greatest(0, extract(epoch FROM now() - at)), 0) * 1000 * count / period_ms)
           END
    FROM (SELECT greatest(1, count * 1000.0 / period_ms)::float8 AS burst) b
$$;

-- groups: per queue and group, its jobs waiting now (due ones, and how long
-- the oldest has waited in seconds; those not due yet) and running, and its
-- weight in fair shares. Current state, read through jobs_group_idx: only
-- grouped jobs that are not finished.
CREATE VIEW baton.groups AS
SELECT j.queue, j.group_key AS "group",
       count(*) FILTER (WHERE j.state <> 'running' AND j.run_at <= now()) AS due_jobs,
       coalesce(extract(epoch FROM now() - min(greatest(j.run_at, timestamptz '0001-01-01 00:00:00+00'))
                FILTER (WHERE j.state <> 'running' AND j.run_at <= now())), 0)::float8 AS oldest_due_seconds,
       count(*) FILTER (WHERE j.state <> 'running' AND j.run_at > now()) AS later_jobs,
       count(*) FILTER (WHERE j.state = 'running') AS running_jobs,
       coalesce(max(g.weight), 1)::integer AS weight
FROM baton.jobs j
LEFT JOIN baton.queue_groups g ON g.queue = j.queue AND g.group_key = j.group_key
WHERE j.group_key IS NOT NULL AND j.state IN ('scheduled', 'available', 'retrying', 'running')
GROUP BY j.queue, j.group_key;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'baton_reader') THEN
        GRANT SELECT ON baton.groups TO baton_reader;
    END IF;
END $$;
