#!/usr/bin/env bash
# Interleaves `baton bench` burn-downs of two or more builds (A, B, A, B, ...)
# and prints, per build, each run's executions/s and machine CPU ms per 1,000
# executions, then the medians (and the bench process's own CPU share). On a machine whose disk makes throughput
# swing, compare builds only this way.
#
#   scripts/bench-compare.sh [-s STAGES] [-n JOBS] [-c SLOTS] [-r REPS] BIN[:SLOTS] BIN[:SLOTS]...
#
# SLOTS is --concurrency (0: the stage defaults, adaptive slots), for every
# build or, after a colon, for one. DATABASE_URL names the server (each run
# recreates <name>_bench).
set -euo pipefail
stages=2 jobs=60000 slots=300 reps=5
while getopts "s:n:c:r:" opt; do
	case $opt in
	s) stages=$OPTARG ;;
	n) jobs=$OPTARG ;;
	c) slots=$OPTARG ;;
	r) reps=$OPTARG ;;
	*) sed -n '2,11p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
if [ $# -lt 1 ]; then
	sed -n '2,11p' "$0" >&2
	exit 2
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq "$reps"); do
	for i in $(seq $#); do
		spec=${!i} bin=${!i} c=$slots
		if [[ $spec == *:* ]]; then bin=${spec%:*} c=${spec##*:}; fi
		echo "bench-compare: rep $r: $bin, --concurrency $c" >&2
		"$bin" bench --stages "$stages" --jobs "$jobs" --concurrency "$c" --rate 0 --rest-jobs 0 --json \
			2>/dev/null >>"$out/$i.jsonl"
	done
done
for i in $(seq $#); do
	python3 - "${!i}" "$out/$i.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[2])]
rate = [r["jobs_per_sec"] for r in runs]
cpu = [r.get("cpu_ms_per_1000_jobs", 0) for r in runs]
own = [r.get("bench_cpu_ms_per_1000_jobs", 0) for r in runs]
print("%s: executions/s %s median %.0f | CPU ms/1000 %s median %.0f (bench process %.1f)" % (
    sys.argv[1], " ".join("%.0f" % x for x in rate), statistics.median(rate),
    " ".join("%.0f" % x for x in cpu), statistics.median(cpu), statistics.median(own)))
PY
done
