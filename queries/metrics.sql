-- name: MetricsTables :many
-- Vacuum health of Baton's tables, for /metrics.
SELECT c.relname::text AS table_name,
       pg_stat_get_live_tuples(c.oid)::bigint AS live_tuples,
       pg_stat_get_dead_tuples(c.oid)::bigint AS dead_tuples,
       coalesce(extract(epoch FROM greatest(pg_stat_get_last_autovacuum_time(c.oid), pg_stat_get_last_vacuum_time(c.oid))), 0)::float8 AS last_vacuum_unix
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'baton' AND c.relkind = 'r'
ORDER BY c.relname;

-- name: MetricsOldestTransaction :one
-- The age of the oldest open transaction in this database: a long one holds
-- back vacuum everywhere, the hot job table included.
SELECT coalesce(extract(epoch FROM now() - min(a.xact_start)), 0)::float8 AS seconds
FROM pg_catalog.pg_stat_get_activity(NULL) a
WHERE a.datid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = current_database());
