-- golang-migrate's version table, as it creates it (db.Migrator names it),
-- for sqlc only: the migrations do not create it, so sqlc would not know it.
CREATE TABLE baton_schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
