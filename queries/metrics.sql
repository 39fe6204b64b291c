-- name: TableHealth :many
-- The table_health view: rows, dead rows, sizes and vacuums of Baton's
-- tables, for baton report, the dashboard and /metrics.
SELECT table_name::text AS table_name, live_rows::bigint AS live_rows, dead_rows::bigint AS dead_rows,
       table_bytes::bigint AS table_bytes, index_bytes::bigint AS index_bytes,
       last_vacuum, vacuums::bigint AS vacuums
FROM baton.table_health
ORDER BY table_bytes + index_bytes DESC, table_name;

-- name: MetricsOldestTransaction :one
-- The age of the oldest open transaction in this database: a long one holds
-- back vacuum everywhere, the hot job table included.
SELECT coalesce(extract(epoch FROM now() - min(a.xact_start)), 0)::float8 AS seconds
FROM pg_catalog.pg_stat_get_activity(NULL) a
WHERE a.datid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = current_database());
