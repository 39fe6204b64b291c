-- A long history, made fast, for the plans of the reporting views
-- (scripts/report-plans.sh, and the reports' plan test through
-- dbtest.History). It defines pg_temp.journeys and pg_temp.history in the
-- session that runs it; VACUUM ANALYZE the tables after history().
--
-- journeys(n, first, from, span): n journeys with ids from 2 * first - 1,
-- created evenly from "from" over "span". Journey g: root 2g-1 in a, child
-- 2g in b; every 50th root dies after three attempts. A success is the job
-- row's (completed_by, run_us: migration 28); the history stores the
-- creation of each root and the end of each dead job's last attempt.
CREATE FUNCTION pg_temp.journeys(n bigint, first bigint, since timestamptz, span interval) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO baton.jobs (id, queue, state, payload, attempts, max_attempts, lease_token, run_at, created_at,
                            started_at, finished_at, last_error, parent_id, parent_seq, root_id, root_created_at,
                            completed_by, run_us)
    OVERRIDING SYSTEM VALUE
    SELECT id, queue, state::baton.job_state, '{"n":1}', attempts, 3, attempts, run_at, created_at,
           started_at, finished_at, last_error, parent_id, parent_seq, root_id, root_created_at,
           CASE WHEN state = 'succeeded' THEN 'w' || id % 8 END, CASE WHEN state = 'succeeded' THEN 50000 END
    FROM (SELECT g, since + span * ((g - first)::float8 / n) AS t FROM generate_series(first, first + n - 1) g) s
    CROSS JOIN LATERAL (VALUES
        (2 * g - 1, 'a', CASE WHEN g % 50 = 0 THEN 'dead' ELSE 'succeeded' END, CASE WHEN g % 50 = 0 THEN 3 ELSE 1 END,
         t, t, t + interval '5 ms', t + interval '55 ms', CASE WHEN g % 50 = 0 THEN 'exit status 2: bad input' END,
         NULL::bigint, NULL::integer, NULL::bigint, NULL::timestamptz),
        (2 * g, 'b', 'succeeded', 1, t + interval '56 ms', t + interval '56 ms', t + interval '58 ms', t + interval '90 ms',
         NULL, 2 * g - 1, 0, 2 * g - 1, t)) j(id, queue, state, attempts, run_at, created_at, started_at, finished_at,
                                             last_error, parent_id, parent_seq, root_id, root_created_at)
    WHERE j.queue = 'a' OR g % 50 <> 0;
    INSERT INTO baton.job_events (job_id, at, from_state, to_state, attempt, lease_token, worker, error, claimed_at, due_at, run_us)
    SELECT j.id, e.at, e.from_state::baton.job_state, e.to_state::baton.job_state, e.attempt, e.attempt,
           e.worker, e.error, e.claimed_at, j.run_at, e.run_us
    FROM baton.jobs j
    CROSS JOIN LATERAL (VALUES
        (j.created_at, NULL, 'available', 0, NULL, NULL, NULL::timestamptz, NULL::bigint),
        (j.finished_at, 'running', j.state::text, j.attempts, 'w' || j.id % 8, j.last_error, j.started_at, 50000::bigint)) e(
            at, from_state, to_state, attempt, worker, error, claimed_at, run_us)
    WHERE j.id BETWEEN 2 * first - 1 AND 2 * (first + n - 1)
      AND CASE WHEN e.from_state IS NULL THEN j.parent_id IS NULL ELSE j.state <> 'succeeded' END;
$$;

-- history(old, recent): old journeys finished 2 to 9 days ago (outside every
-- default window), recent ones in the last hour, and a backlog of 1,000 due
-- jobs at priorities 0-2; the counters folded.
CREATE FUNCTION pg_temp.history(old bigint, recent bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO baton.queues (name) VALUES ('a'), ('b') ON CONFLICT DO NOTHING;
    SELECT pg_temp.journeys(old, 1, now() - interval '9 days', interval '7 days');
    SELECT pg_temp.journeys(recent, old + 1, now() - interval '50 minutes', interval '45 minutes');
    SELECT setval(pg_get_serial_sequence('baton.jobs', 'id'), (SELECT max(id) FROM baton.jobs));
    INSERT INTO baton.jobs (queue, state, payload, priority, run_at)
    SELECT 'a', 'available', '{}', g % 3, now() - g * interval '1 second' FROM generate_series(1, 1000) g;
    WITH moved AS (DELETE FROM baton.job_count_deltas RETURNING queue, state, n)
    INSERT INTO baton.job_counts AS c (queue, state, n)
    SELECT queue, state, sum(n)::bigint FROM moved GROUP BY queue, state
    ON CONFLICT (queue, state) DO UPDATE SET n = c.n + excluded.n;
$$;
