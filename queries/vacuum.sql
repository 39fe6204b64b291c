-- name: TablesToVacuum :many
-- Baton's tables whose dead row versions have passed a share of their rows
-- (and a floor), that no vacuum is working on, and that this role may
-- vacuum (as their owner, or a superuser): Vacuum's work list, most dead
-- rows first.
SELECT c.relname::text AS table_name
FROM pg_catalog.pg_class c
WHERE c.relnamespace = 'baton'::regnamespace
  AND c.relkind = 'r'
  AND pg_catalog.pg_stat_get_dead_tuples(c.oid) >= greatest(sqlc.arg(min_dead)::bigint, sqlc.arg(dead_share)::float8 * pg_catalog.pg_stat_get_live_tuples(c.oid))
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_progress_vacuum v WHERE v.relid = c.oid)
  AND pg_catalog.pg_has_role(c.relowner, 'USAGE')
ORDER BY pg_catalog.pg_stat_get_dead_tuples(c.oid) DESC;
