-- name: SchemaVersion :one
-- The applied migration and whether it failed half-way; no row before the
-- first migration, and an undefined_table error where none ever ran.
SELECT version, dirty FROM baton_schema_migrations LIMIT 1;

-- name: SchemaCompatibleSince :one
-- The oldest binary (by its newest migration) this schema accepts: see
-- migration 22.
SELECT baton.compatible_since()::integer AS since;
