-- A role for reporting tools (Grafana, Metabase, psql): it can read Baton's
-- reporting views and nothing else, in read-only transactions by default. Run
-- it as the owner of the baton schema (a superuser also sets temp_file_limit),
-- in the Baton database:
--
--   psql "$DATABASE_URL" -f docs/reader-role.sql
--   psql "$DATABASE_URL" -c "ALTER ROLE baton_reader LOGIN PASSWORD 'choose-one'"
--
-- Roles belong to the whole server: run it again in each database that holds
-- a Baton schema.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'baton_reader') THEN
        CREATE ROLE baton_reader;
    END IF;
END $$;
GRANT USAGE ON SCHEMA baton TO baton_reader;
-- job_history and attempts have each state change's (or attempt's) worker and
-- error, and no payload or result.
GRANT SELECT ON baton.queue_summary, baton.stage_latency, baton.throughput_hourly,
    baton.failures, baton.stuck_jobs, baton.pipeline_lineage, baton.table_health,
    baton.stage_errors, baton.attempts_per_job, baton.slowest_journeys,
    baton.backlog_by_priority, baton.worker_activity, baton.periodic,
    baton.job_history, baton.attempts, baton.groups TO baton_reader;

-- What a session may hold. These are defaults, not limits: PostgreSQL 15 lets
-- any session change its own statement_timeout,
-- idle_in_transaction_session_timeout and default_transaction_read_only, and
-- has no transaction_timeout. The limits are enforced from outside: Baton's
-- maintenance (in serve and in every worker) ends a baton_reader session idle
-- in a transaction for over a minute, or with a transaction open for over
-- five (BATON_READER_IDLE_LIMIT, BATON_READER_TRANSACTION_LIMIT), because such
-- a transaction holds back vacuum, and its locks queue writers behind the
-- next migration. For that, Baton's role is made a member of baton_reader.
ALTER ROLE baton_reader SET default_transaction_read_only = on;
ALTER ROLE baton_reader SET statement_timeout = '30s';
ALTER ROLE baton_reader SET idle_in_transaction_session_timeout = '60s';
ALTER ROLE baton_reader SET lock_timeout = '5s';
ALTER ROLE baton_reader CONNECTION LIMIT 10;
GRANT baton_reader TO CURRENT_USER;
-- No temporary tables, and so no temporary functions: every role may create
-- them by default (TEMPORARY is PUBLIC's), so it is taken from PUBLIC and
-- given back to the role running this script. temp_file_limit only a
-- superuser may set, and so no session can lift it.
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO %I', current_database(), current_user);
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'baton_reader may still create temporary tables: only the database''s owner can revoke TEMPORARY from PUBLIC';
END $$;
DO $$
BEGIN
    ALTER ROLE baton_reader SET temp_file_limit = '1GB';
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'temp_file_limit is not set for baton_reader: only a superuser can set it';
END $$;
