#!/usr/bin/env bash
# make run: the quick start. Uses DATABASE_URL if set; else the PostgreSQL
# on 127.0.0.1:5432, starting the local cluster if it is down; else a
# project-local cluster in $BATON_DEV_DIR (.baton/, on port $BATON_DEV_PORT,
# 54329; only its owner gets in, with the password in .baton/pgpass),
# installing Debian's PostgreSQL first if needed. Then `baton dev`:
# migrate, the API on 127.0.0.1:8080, and a worker on the example pipeline,
# in one process. It prints the database it used and a curl to paste.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/postgres.sh
if [ -z "${DATABASE_URL:-}" ]; then
	if ensure_postgres; then
		export DATABASE_URL="postgres://postgres@127.0.0.1:5432/baton?sslmode=disable"
		echo "Database: $DATABASE_URL"
	else
		dir=${BATON_DEV_DIR:-.baton} port=${BATON_DEV_PORT:-54329}
		echo "nothing answers on 127.0.0.1:5432: using a project-local PostgreSQL" >&2
		install_postgres && local_cluster "$dir" "$port" || exit 1
		export DATABASE_URL=$(cluster_url "$(cd "$dir" && pwd)" "$port")
		echo "Database: $DATABASE_URL (in $dir; it keeps running after Ctrl-C, make stop stops it)"
		echo "For baton commands in another shell:"
		echo "  export DATABASE_URL='$DATABASE_URL'"
	fi
fi
exec bin/baton dev --config examples/pipeline.yaml "$@"
