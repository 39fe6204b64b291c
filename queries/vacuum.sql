-- name: TablesToVacuum :many
-- Baton's tables whose dead row versions have passed a share of their rows
-- (and a floor), that no vacuum is working on, and that this role may
-- vacuum (as their owner, or a superuser): Vacuum's work list, most dead
-- rows first. The progress view shows every database's vacuums, and the
-- databases made from one template have the same table OIDs.
SELECT c.relname::text AS table_name
FROM pg_catalog.pg_class c
WHERE c.relnamespace = 'baton'::regnamespace
  AND c.relkind = 'r'
  AND pg_catalog.pg_stat_get_dead_tuples(c.oid) >= greatest(sqlc.arg(min_dead)::bigint, sqlc.arg(dead_share)::float8 * pg_catalog.pg_stat_get_live_tuples(c.oid))
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_progress_vacuum v WHERE v.relid = c.oid AND v.datname = current_database())
  AND pg_catalog.pg_has_role(c.relowner, 'USAGE')
ORDER BY pg_catalog.pg_stat_get_dead_tuples(c.oid) DESC;

-- name: VacuumHorizon :one
-- How far vacuum may clean this database's tables: the oldest transaction ID
-- some session may still need (horizon), and the next one to be assigned
-- (next_xid), both as 64-bit IDs, which do not wrap. A session's snapshot
-- or transaction holds it back in its own database (pg_stat_activity shows
-- every role's xids), a standby's feedback through its walsender in every
-- database, and so do replication slots and prepared transactions.
-- Vacuums themselves hold back no one. With nothing holding it, horizon
-- is next_xid.
WITH held AS (
    SELECT greatest(age(a.backend_xmin), age(a.backend_xid)) AS age
    FROM pg_catalog.pg_stat_activity a
    WHERE a.pid <> pg_catalog.pg_backend_pid()
      AND (a.datname = current_database() OR a.backend_type = 'walsender')
      AND a.pid NOT IN (SELECT v.pid FROM pg_catalog.pg_stat_progress_vacuum v)
    UNION ALL
    SELECT age(s.xmin) FROM pg_catalog.pg_replication_slots s
    UNION ALL
    SELECT age(p.transaction) FROM pg_catalog.pg_prepared_xacts p WHERE p.database = current_database()
), next AS (
    SELECT pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text::bigint AS xid
)
SELECT (n.xid - coalesce((SELECT max(h.age) FROM held h), 0))::bigint AS horizon, n.xid AS next_xid
FROM next n;
