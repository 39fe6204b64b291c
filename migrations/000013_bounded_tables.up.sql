-- Retention reads the jobs it may delete here: per queue and final state,
-- oldest first, up to the queue's cutoff. A prune then costs the rows it
-- deletes, however large the table. (Its first shape bounded the scan with
-- the BRIN on finished_at, but the bound was a subquery the planner could not
-- see: it read the whole table every 10 s, 1.5 s at 4M jobs.)
CREATE INDEX jobs_finished_idx ON baton.jobs (queue, state, finished_at) WHERE state IN ('succeeded', 'dead', 'canceled');

-- table_health: per Baton table, its rows (live, and dead ones waiting for
-- vacuum, as the statistics count them), its size on disk apart from and
-- with its indexes, and its last vacuum. Dead rows that keep climbing, or
-- sizes that keep growing while the jobs in it do not, mean vacuum is not
-- keeping up (docs/operations.md). baton report, the dashboard and /metrics
-- read it.
CREATE VIEW baton.table_health AS
SELECT c.relname::text AS table_name,
       s.n_live_tup AS live_rows,
       s.n_dead_tup AS dead_rows,
       pg_table_size(c.oid) AS table_bytes,
       pg_indexes_size(c.oid) AS index_bytes,
       greatest(s.last_vacuum, s.last_autovacuum) AS last_vacuum,
       s.vacuum_count + s.autovacuum_count AS vacuums
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_stat_all_tables s ON s.relid = c.oid
WHERE c.relnamespace = 'baton'::regnamespace AND c.relkind = 'r';
