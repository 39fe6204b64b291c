#!/usr/bin/env bash
# Times JobList (GET /v1/jobs) on 10,000,000 jobs, for every filter, under a
# generic and a custom plan: execution time and buffers read, per revision.
#
#   scripts/list-plans.sh [REV...]     (default: the working tree)
#
# DATABASE_URL names the server; the jobs go into <name>_list (kept between
# runs: SETUP=1 recreates it). Queues: big (98.9 %, with 9,900 dead and 4,950
# available), mid (1 %), rare (80 succeeded, 20 dead), spread over the ids.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/baton?sslmode=disable}
url=$(sed -E 's|/([^/?]+)(\?\|$)|/\1_list\2|' <<<"$base")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ "${SETUP:-}" = 1 ] || ! psql -qAt "$url" -c "SELECT 1 FROM baton.jobs LIMIT 1" >/dev/null 2>&1; then
	go build -o "$work/baton" ./cmd/baton
	db=$(sed -E 's|.*/([^/?]+)(\?.*)?$|\1|' <<<"$url")
	psql -q "$(sed -E "s|/$db|/postgres|" <<<"$url")" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
	DATABASE_URL=$url "$work/baton" migrate up
	psql -q "$url" <<'SQL'
INSERT INTO baton.queues (name) VALUES ('big'), ('mid'), ('rare');
INSERT INTO baton.jobs (queue, state, payload, finished_at)
SELECT CASE WHEN g % 100000 = 7 THEN 'rare' WHEN g % 100 = 3 THEN 'mid' ELSE 'big' END,
       (CASE WHEN g % 500000 = 7 THEN 'dead'
             WHEN g > 9985000 AND g % 100 <> 3 AND g % 100000 <> 7
                  THEN CASE WHEN g > 9995000 THEN 'available' ELSE 'dead' END
             ELSE 'succeeded' END)::baton.job_state,
       '{"n":1}', now()
FROM generate_series(1, 10000000) g;
WITH moved AS (DELETE FROM baton.job_count_deltas RETURNING queue, state, n)
INSERT INTO baton.job_counts AS c (queue, state, n)
SELECT queue, state, sum(n)::bigint FROM moved GROUP BY queue, state
ON CONFLICT (queue, state) DO UPDATE SET n = c.n + excluded.n;
SQL
	psql -q "$url" -c "VACUUM ANALYZE baton.jobs"
fi
revs=("$@")
[ ${#revs[@]} -gt 0 ] || revs=(.)
cases=("'rare','succeeded'" "'rare',NULL" "NULL,'dead'" "'mid',NULL" "'mid','succeeded'" "'big','succeeded'" "'big','dead'" "NULL,NULL")
for rev in "${revs[@]}"; do
	if [ "$rev" = . ]; then cat queries/jobs.sql; else git show "$rev:queries/jobs.sql"; fi |
		awk '/^-- name: JobList /{f=1;next} f&&/^-- name:/{exit} f' | grep -v '^ *--' |
		sed -e "s/sqlc.narg('queue')::text/\$1::text/g" -e "s/sqlc.narg('state')::baton.job_state/\$2::baton.job_state/g" \
			-e 's/@before_id::bigint/$3::bigint/g' -e 's/@max_jobs::integer/$4::integer/g' -e 's/; *$//' >"$work/list.sql"
	for mode in force_generic_plan force_custom_plan; do
		for c in "${cases[@]}"; do
			psql -qAt "$url" <<SQL | sed -n '/^\[/,$p' | LABEL="$rev $mode ($c)" python3 -c '
import json, os, sys
p = json.load(sys.stdin)[0]
n = p["Plan"]
print("%s: %d rows, %.2f ms, %d buffers" % (os.environ["LABEL"], n["Actual Rows"], p["Execution Time"],
      n.get("Shared Hit Blocks", 0) + n.get("Shared Read Blocks", 0)))'
SET plan_cache_mode = $mode;
SET jit = off;
PREPARE list(text, baton.job_state, bigint, integer) AS $(cat "$work/list.sql");
EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE list($c, 9223372036854775807, 50);
SQL
		done
	done
done
