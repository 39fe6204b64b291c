-- Waiting jobs get a narrow table of their own (issue 27).
--
-- A claim read the jobs it could take from jobs_claim_idx, an index on the
-- job table that every submit, claim and completion writes. While a
-- transaction somewhere holds back vacuum (an idle session, a long report,
-- readers scanning the event tables), every row version of that table stays:
-- the job table grew a version a claim and a completion, 1.26 KB a job, and
-- the readers' scans and the claims' index reads grew with it (claim p99
-- 683 ms against 21.5 clean, docs/benchmarks.md). A waiting job now also
-- has a row of 5 columns here, inserted when it starts to wait and deleted
-- when it stops: about 0.06 KB a job under a held horizon. Claims read and
-- lock these rows, then update the job (JobClaim).
--
-- The rows follow baton.jobs by triggers, whatever writes it (the API, the
-- worker, SQL run by hand), except the claims (a job made running under a
-- new lease token), which delete the rows they took themselves: a trigger's work on each claimed row cost 10-18 % of the
-- hand-off benchmark. Inserts are counted once a statement from the
-- transition table the counters already keep. A row is found by the claim
-- index's key (no primary key: one more index to write on every submit).
--
-- Old binaries claim through jobs_claim_idx, which goes: compatible_since 29.
CREATE TABLE baton.waiting_jobs (
    id       bigint      NOT NULL, -- baton.jobs(id)
    queue    text        NOT NULL,
    priority smallint    NOT NULL,
    run_at   timestamptz NOT NULL,
    isolated boolean     NOT NULL
);
CREATE INDEX waiting_jobs_claim_idx ON baton.waiting_jobs (queue, priority, run_at, id);

CREATE FUNCTION baton.wait_inserted_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO baton.waiting_jobs (id, queue, priority, run_at, isolated)
    SELECT id, queue, priority, run_at, isolated FROM new_jobs
    WHERE state IN ('scheduled', 'available', 'retrying');
    RETURN NULL;
END $$;

-- A job that stops waiting, starts to wait, or waits under another key. The
-- old row is deleted unless a claim holds it (SKIP LOCKED): that claim
-- waits for this job's row, finds it no longer claimable, and deletes the
-- row it holds itself; waiting for it instead would deadlock.
CREATE FUNCTION baton.wait_changed_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.state IN ('scheduled', 'available', 'retrying') THEN
        DELETE FROM baton.waiting_jobs w
        WHERE w.ctid = ANY (ARRAY(
            SELECT x.ctid FROM baton.waiting_jobs x
            WHERE x.queue = OLD.queue AND x.priority = OLD.priority AND x.run_at = OLD.run_at AND x.id = OLD.id
            FOR UPDATE SKIP LOCKED));
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.state IN ('scheduled', 'available', 'retrying') THEN
        INSERT INTO baton.waiting_jobs (id, queue, priority, run_at, isolated)
        VALUES (NEW.id, NEW.queue, NEW.priority, NEW.run_at, NEW.isolated);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION baton.wait_truncated_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE baton.waiting_jobs;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_wait_insert AFTER INSERT ON baton.jobs
    REFERENCING NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION baton.wait_inserted_jobs();
-- The WHEN leaves out the rows no trigger need see (evaluated in C, no call):
-- a claim (to running under a new lease token: the claims delete their
-- rows), a completion, a heartbeat, a promotion.
CREATE TRIGGER jobs_wait_update AFTER UPDATE ON baton.jobs FOR EACH ROW
    WHEN ((OLD.state IN ('scheduled', 'available', 'retrying')
           AND NEW.state NOT IN ('scheduled', 'available', 'retrying')
           AND (NEW.state <> 'running' OR NEW.lease_token = OLD.lease_token))
          OR (NEW.state IN ('scheduled', 'available', 'retrying')
              AND (OLD.state NOT IN ('scheduled', 'available', 'retrying')
                   OR (OLD.queue, OLD.priority, OLD.run_at, OLD.isolated, OLD.id)
                      IS DISTINCT FROM (NEW.queue, NEW.priority, NEW.run_at, NEW.isolated, NEW.id))))
    EXECUTE FUNCTION baton.wait_changed_job();
CREATE TRIGGER jobs_wait_delete AFTER DELETE ON baton.jobs FOR EACH ROW
    WHEN (OLD.state IN ('scheduled', 'available', 'retrying'))
    EXECUTE FUNCTION baton.wait_changed_job();
CREATE TRIGGER jobs_wait_truncate AFTER TRUNCATE ON baton.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION baton.wait_truncated_jobs();

-- After the triggers, which hold off writers until this commits: no job
-- starts to wait unseen.
INSERT INTO baton.waiting_jobs (id, queue, priority, run_at, isolated)
SELECT id, queue, priority, run_at, isolated FROM baton.jobs
WHERE state IN ('scheduled', 'available', 'retrying');

DROP INDEX baton.jobs_claim_idx;

-- The views that read waiting jobs read them here; same columns. The oldest
-- due job of a queue is the earliest of each priority's first (priorities
-- are 0..100): an index probe each, not a walk over the whole backlog.
CREATE OR REPLACE VIEW baton.queue_summary AS
SELECT q.name AS queue,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'scheduled'), 0)::bigint AS scheduled,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'available'), 0)::bigint AS available,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'running'), 0)::bigint   AS running,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'retrying'), 0)::bigint  AS retrying,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'succeeded'), 0)::bigint AS succeeded,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'dead'), 0)::bigint      AS dead,
       coalesce(sum(c.n) FILTER (WHERE c.state = 'canceled'), 0)::bigint  AS canceled,
       coalesce((SELECT now() - min(greatest(f.run_at, timestamptz '0001-01-01 00:00:00+00'))
                 FROM generate_series(0, 100) p
                 CROSS JOIN LATERAL (
                     SELECT w.run_at FROM baton.waiting_jobs w
                     WHERE w.queue = q.name AND w.priority = p AND w.run_at <= now()
                     ORDER BY w.run_at LIMIT 1) f), interval '0')::interval AS oldest_available_age
FROM baton.queues q
LEFT JOIN (
    SELECT queue, state, n FROM baton.job_counts
    UNION ALL
    SELECT queue, state, n FROM baton.job_count_deltas
) c ON c.queue = q.name
GROUP BY q.name;

CREATE OR REPLACE VIEW baton.backlog_by_priority AS
SELECT w.queue, w.priority,
       count(*) FILTER (WHERE w.run_at <= now()) AS due_jobs,
       coalesce(extract(epoch FROM now() - min(greatest(w.run_at, timestamptz '0001-01-01 00:00:00+00'))
                FILTER (WHERE w.run_at <= now())), 0)::float8 AS oldest_due_seconds,
       count(*) FILTER (WHERE w.run_at > now()) AS later_jobs
FROM baton.waiting_jobs w
WHERE baton.report_tag() IS NULL
   OR EXISTS (SELECT 1 FROM baton.jobs j WHERE j.id = w.id AND j.tags @> ARRAY[baton.report_tag()])
GROUP BY w.queue, w.priority;

CREATE OR REPLACE VIEW baton.stuck_jobs AS
SELECT j.id, j.queue, j.state, 'lease expired' AS reason,
       extract(epoch FROM now() - j.lease_expires_at)::float8 AS overdue_seconds, j.attempts, j.leased_by
FROM baton.jobs j
WHERE j.state = 'running' AND j.lease_expires_at < now()
  AND (baton.report_tag() IS NULL OR j.tags @> ARRAY[baton.report_tag()])
UNION ALL
SELECT j.id, j.queue, j.state, 'not claimed',
       extract(epoch FROM now() - j.run_at)::float8, j.attempts, j.leased_by
FROM baton.waiting_jobs w
JOIN baton.jobs j ON j.id = w.id
WHERE w.run_at < now() - interval '1 minute'
  AND j.state IN ('scheduled', 'available', 'retrying')
  AND (baton.report_tag() IS NULL OR j.tags @> ARRAY[baton.report_tag()]);

CREATE OR REPLACE FUNCTION baton.compatible_since() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 29';
