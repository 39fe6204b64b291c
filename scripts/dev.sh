#!/usr/bin/env bash
# make run: the quick start. Starts the local PostgreSQL if it is down, then
# `baton dev`: migrate, the API on 127.0.0.1:8080, and a worker on the
# example pipeline, in one process. It prints a curl to paste.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/postgres.sh
if [ -z "${DATABASE_URL:-}" ] && ! ensure_postgres; then
	echo "PostgreSQL does not answer on 127.0.0.1:5432: start it, or set DATABASE_URL" >&2
	exit 1
fi
exec bin/baton dev --config examples/pipeline.yaml "$@"
