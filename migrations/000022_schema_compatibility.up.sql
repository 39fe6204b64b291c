-- Which binaries may run against this schema: those whose newest migration is
-- at least this version. serve and worker read it when the schema is newer
-- than they are (a rolling upgrade: the new release's migration runs while
-- the old release's pods still work). A migration that only adds (tables,
-- nullable columns, views, functions) leaves it alone, so older binaries keep
-- running; one that drops, renames or changes what older binaries use sets it
-- to its own version:
--   CREATE OR REPLACE FUNCTION baton.compatible_since() ... AS 'SELECT 27';
CREATE FUNCTION baton.compatible_since() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 22';
