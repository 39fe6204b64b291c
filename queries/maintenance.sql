-- name: MaintenanceTurn :one
-- Takes a maintenance step's turn if no replica took it within every_ms
-- (database time), and says whether this replica has it. A plain UPDATE
-- that writes only when the turn is due: a replica whose turn it is not
-- writes nothing, and two that ask at once serialize on the row, the second
-- finding the turn taken when the first commits. A step with no row yet
-- (migration 27 made the pass's) adds its row and takes the turn; of two
-- replicas that add it at once, one does.
WITH taken AS (
    UPDATE baton.maintenance_turns
    SET ran_at = now()
    WHERE step = @step::text
      AND ran_at <= now() - interval '1 millisecond' * @every_ms::bigint
    RETURNING step
), added AS (
    INSERT INTO baton.maintenance_turns (step, ran_at)
    SELECT @step::text, now()
    WHERE NOT EXISTS (SELECT 1 FROM baton.maintenance_turns WHERE step = @step::text)
    ON CONFLICT (step) DO NOTHING
    RETURNING step
)
SELECT (EXISTS (SELECT 1 FROM taken) OR EXISTS (SELECT 1 FROM added))::boolean AS taken;
