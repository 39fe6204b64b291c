#!/usr/bin/env bash
# Plans and times every reporting view over a long history: how each reads
# baton.jobs and baton.job_events (no sequential scan of either), its
# execution time and the buffers it touched.
#
#   scripts/report-plans.sh            (500,000 journeys: about 1,000,000 jobs of history)
#   JOURNEYS=5000000 scripts/report-plans.sh   (about 10,000,000)
#   PLANS=1 scripts/report-plans.sh    (print each plan too)
#
# DATABASE_URL names the server; the jobs go into <name>_reports (kept between
# runs of the same size: SETUP=1 recreates it). History
# (internal/dbtest/history.sql): JOURNEYS journeys a -> b (two jobs and three
# history rows each; 2 % die at a after three attempts), finished 2 to 9 days
# ago, so outside every default window; then the last hour's 10,000 journeys
# the same way, and a backlog of 1,000 jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/baton?sslmode=disable}
url=$(sed -E 's|/([^/?]+)(\?\|$)|/\1_reports\2|' <<<"$base")
journeys=${JOURNEYS:-500000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
have=$(psql -qAt "$url" -c "SELECT count(*) FROM baton.jobs WHERE queue = 'a'" 2>/dev/null || echo none)
if [ "${SETUP:-}" = 1 ] || [ "$have" != $((journeys + 10000 + 1000)) ]; then
	go build -o "$work/baton" ./cmd/baton
	db=$(sed -E 's|.*/([^/?]+)(\?.*)?$|\1|' <<<"$url")
	psql -q "$(sed -E "s|/$db|/postgres|" <<<"$url")" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
	DATABASE_URL=$url "$work/baton" migrate up
	psql -q -v journeys="$journeys" "$url" <<'SQL'
\i internal/dbtest/history.sql
SELECT pg_temp.history(:journeys, 10000);
SQL
	psql -q "$url" -c "VACUUM ANALYZE baton.jobs" -c "VACUUM ANALYZE baton.job_events"
fi
echo "history: $(psql -qAt "$url" -c "SELECT count(*) FROM baton.jobs") jobs, $(psql -qAt "$url" -c "SELECT count(*) FROM baton.job_events") history rows"
for view in queue_summary backlog_by_priority stage_latency throughput_hourly stage_errors failures attempts_per_job \
	stuck_jobs pipeline_lineage slowest_journeys worker_activity table_health; do
	psql -qAt "$url" <<SQL | sed -n '/^\[/,$p' >"$work/plan.json"
SET jit = off;
EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM baton.$view;
SQL
	VIEW=$view PLANS=${PLANS:-} python3 - "$work/plan.json" <<'PY'
import json, os, sys
p = json.load(open(sys.argv[1]))[0]
scans = set()
def walk(n, depth):
    rel = n.get("Relation Name")
    if rel in ("jobs", "job_events"):
        scans.add("%s %s%s" % (n["Node Type"], rel, " using " + n["Index Name"] if "Index Name" in n else ""))
    if os.environ["PLANS"]:
        print("    " + "  " * depth + n["Node Type"] + (" on " + rel if rel else "") +
              (" using " + n["Index Name"] if "Index Name" in n else ""))
    for c in n.get("Plans", []):
        walk(c, depth + 1)
walk(p["Plan"], 0)
n = p["Plan"]
print("%-20s %5d rows %9.2f ms %7d buffers  %s" % (os.environ["VIEW"], n["Actual Rows"], p["Execution Time"],
      n.get("Shared Hit Blocks", 0) + n.get("Shared Read Blocks", 0), "; ".join(sorted(scans)) or "(no jobs or history read)"))
PY
done
