#!/usr/bin/env bash
# Runs the test suite against a real PostgreSQL: TEST_DATABASE_URL if set, else
# the local cluster on 127.0.0.1:5432 (started if down), else a throwaway
# cluster made by pg_virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/postgres.sh
. scripts/chromium.sh
. scripts/pgbouncer.sh
ensure_chromium
ensure_pgbouncer
ensure_package zsh zsh "the shell completion test"
ensure_package fish fish "the shell completion test"

gotest=(go test -race -count=1 -timeout 15m ./...)

# The Kubernetes manifests, rendered by kustomize and decoded strictly: a
# module of its own (Kubernetes' libraries stay out of Baton's), no database.
(cd deploy/kubernetes && go test -count=1 ./...)

if [ -n "${TEST_DATABASE_URL:-}" ] || ensure_postgres; then
	exec "${gotest[@]}"
fi
install_postgres
echo "no usable cluster on 127.0.0.1:5432: running the tests in a pg_virtualenv cluster" >&2
exec pg_virtualenv sh -c 'TEST_DATABASE_URL="postgres://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$PGDATABASE?sslmode=disable" exec "$@"' sh "${gotest[@]}"
