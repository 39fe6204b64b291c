#!/usr/bin/env bash
# Times one worker draining 3,000 jobs with an exec handler (8 slots): what
# starting a process per job costs, per build.
#
#   scripts/exec-bench.sh BIN [BIN...]                         (exec: ["cat"])
#   EXEC='["sh", "-c", "cat"]' scripts/exec-bench.sh BIN ...   (a shell script)
#   REPS=3 (default), interleaved A, B, A, B...
#
# DATABASE_URL names the server; the jobs go into <name>_exec (recreated).
set -euo pipefail
base=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/baton?sslmode=disable}
url=$(sed -E 's|/([^/?]+)(\?\|$)|/\1_exec\2|' <<<"$base")
db=$(sed -E 's|.*/([^/?]+)(\?.*)?$|\1|' <<<"$url")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/pipeline.yaml" <<YAML
poll_interval: 50ms
stages:
  - queue: a
    handler: {exec: ${EXEC:-["cat"]}}
    concurrency: 8
YAML
for r in $(seq "${REPS:-3}"); do
	for bin in "$@"; do
		psql -q "$(sed -E "s|/$db|/postgres|" <<<"$url")" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
		DATABASE_URL=$url "$bin" migrate up >/dev/null
		psql -q "$url" -c "INSERT INTO baton.queues (name) VALUES ('a')" \
			-c "INSERT INTO baton.jobs (queue, state, payload) SELECT 'a', 'available', '{\"n\":1}' FROM generate_series(1, 3000)"
		start=$(date +%s.%N)
		DATABASE_URL=$url "$bin" worker --config "$work/pipeline.yaml" >/dev/null 2>&1 &
		pid=$!
		until [ "$(psql -qAt "$url" -c "SELECT count(*) FROM baton.jobs WHERE state = 'succeeded'")" = 3000 ]; do sleep 0.05; done
		end=$(date +%s.%N)
		kill "$pid"
		wait "$pid" || true
		echo "rep $r: $bin: $(echo "$end - $start" | bc) s"
	done
done
