-- Backpressure: a queue's max_backlog caps its waiting jobs (scheduled,
-- available and retrying). A submit that would take the queue past it is
-- refused whole (baton.admit raises queue_full, SQLSTATE BQ001), and inserts
-- nothing. Hand-offs, periodic ticks and re-drives are never refused: they
-- would lose work, or a schedule's tick.
ALTER TABLE baton.queues
    ADD COLUMN max_backlog integer CHECK (max_backlog > 0);

-- admit lets n more jobs into queue q, or raises queue_full. Submits of a
-- queue with a max_backlog take turns on its row (held until they commit),
-- and the waiting jobs are read from the exact counters after the turn
-- begins: a VOLATILE function's statements each see what committed before
-- them, so no two submits both take the last places. Returns n.
CREATE FUNCTION baton.admit(q text, n bigint) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    most integer;
    waiting bigint;
BEGIN
    SELECT max_backlog INTO most FROM baton.queues WHERE name = q FOR NO KEY UPDATE;
    IF most IS NULL THEN
        RETURN n;
    END IF;
    SELECT coalesce(sum(c.n), 0) INTO waiting
    FROM (SELECT d.n FROM baton.job_counts d WHERE d.queue = q AND d.state IN ('scheduled', 'available', 'retrying')
          UNION ALL
          SELECT d.n FROM baton.job_count_deltas d WHERE d.queue = q AND d.state IN ('scheduled', 'available', 'retrying')) c;
    IF waiting + n > most THEN
        RAISE EXCEPTION 'queue % is full: % jobs waiting, at most %', q, waiting, most
            USING ERRCODE = 'BQ001', DETAIL = format('%s,%s,%s', waiting, most, n);
    END IF;
    RETURN n;
END $$;
