-- name: MaintenanceTurn :one
-- Takes a maintenance step's turn if no replica took it within every_ms
-- (database time), and says whether this replica has it. A plain UPDATE
-- that writes only when the turn is due: a replica whose turn it is not
-- writes nothing, and two that ask at once serialize on the row, the second
-- finding the turn taken when the first commits.
WITH taken AS (
    UPDATE baton.maintenance_turns
    SET ran_at = now()
    WHERE step = @step::text
      AND ran_at <= now() - interval '1 millisecond' * @every_ms::bigint
    RETURNING step
)
SELECT EXISTS (SELECT 1 FROM taken) AS taken;
