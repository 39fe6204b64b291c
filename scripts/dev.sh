#!/usr/bin/env bash
# make run: the quick start. Finds or makes a database (dev_database, in
# scripts/postgres.sh: DATABASE_URL, else 127.0.0.1:5432, else a
# project-local cluster in .baton/), then `baton dev`: migrate, the API on
# 127.0.0.1:8080, and a worker on the example pipeline, in one process. It
# prints the database it used and a curl to paste.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/postgres.sh
dev_database || exit 1
exec bin/baton dev --config examples/pipeline.yaml "$@"
