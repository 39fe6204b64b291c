-- A role for reporting tools (Grafana, Metabase, psql): it can read Baton's
-- reporting views and nothing else, in read-only transactions that cannot run
-- longer than 30 seconds. Run it as the owner of the baton schema, in the
-- Baton database:
--
--   psql "$DATABASE_URL" -f docs/reader-role.sql
--   psql "$DATABASE_URL" -c "ALTER ROLE baton_reader LOGIN PASSWORD 'choose-one'"
--
-- Roles belong to the whole server: run the GRANTs again in each database
-- that holds a Baton schema.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'baton_reader') THEN
        CREATE ROLE baton_reader;
    END IF;
END $$;
ALTER ROLE baton_reader SET default_transaction_read_only = on;
ALTER ROLE baton_reader SET statement_timeout = '30s';
GRANT USAGE ON SCHEMA baton TO baton_reader;
-- job_history and attempts have each state change's (or attempt's) worker and
-- error, and no payload or result.
GRANT SELECT ON baton.queue_summary, baton.stage_latency, baton.throughput_hourly,
    baton.failures, baton.stuck_jobs, baton.pipeline_lineage, baton.table_health,
    baton.stage_errors, baton.attempts_per_job, baton.slowest_journeys,
    baton.backlog_by_priority, baton.worker_activity,
    baton.job_history, baton.attempts TO baton_reader;
