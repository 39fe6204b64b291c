# Sourced by scripts/test.sh: the pooler test runs Debian's PgBouncer, in
# transaction mode, in front of the test server.
. scripts/packages.sh
ensure_pgbouncer() { ensure_package pgbouncer pgbouncer "the pooler test"; }
