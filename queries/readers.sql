-- name: ReaderSessionsEnd :many
-- Ends this database's sessions of the reporting role (baton_reader,
-- docs/reader-role.sql) that hold a transaction past their limits: idle in
-- it longer than idle_ms, or in it at all (running a statement, or between
-- statements) longer than transaction_ms. Such a transaction holds back
-- vacuum, and its locks queue every writer behind the next DDL. PostgreSQL 15
-- lets any session lift its own statement_timeout and
-- idle_in_transaction_session_timeout and has no transaction_timeout, so the
-- limits are enforced from outside. Sessions this role may not signal (it
-- needs membership in baton_reader or pg_signal_backend) are left alone,
-- and counted.
SELECT a.pid, a.state::text AS state,
       extract(epoch FROM now() - a.xact_start)::float8 AS transaction_seconds,
       CASE WHEN pg_catalog.pg_has_role(a.usesysid, 'MEMBER') OR pg_catalog.pg_has_role('pg_signal_backend', 'MEMBER')
            THEN pg_catalog.pg_terminate_backend(a.pid) ELSE false END AS ended
FROM pg_catalog.pg_stat_activity a
WHERE a.usename = 'baton_reader'
  AND a.datname = current_database()
  AND a.xact_start IS NOT NULL
  AND (a.state LIKE 'idle in transaction%' AND a.state_change < now() - interval '1 millisecond' * @idle_ms::bigint
       OR a.xact_start < now() - interval '1 millisecond' * @transaction_ms::bigint);
