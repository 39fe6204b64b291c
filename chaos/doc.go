// Package chaos is Baton's fault-injection suite. It runs `baton serve` and
// several `baton worker` processes against a PostgreSQL cluster of its own,
// drives a three-stage pipeline through the REST API, injects faults (SIGKILL,
// SIGSTOP, backend termination, Postgres restarts, poison jobs, rolling
// SIGTERM, lost submit responses), waits for quiescence and checks the whole
// history: nothing acknowledged is lost and every transition and hand-off
// commits exactly once.
//
// The tests carry the build tag chaos: `make chaos` runs the full profile,
// `make chaos-short` (part of CI) the short one. They need Debian's
// postgresql-common (pg_createcluster) and run as a user that may use it.
package chaos
