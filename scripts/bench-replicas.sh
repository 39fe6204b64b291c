#!/usr/bin/env bash
# Interleaves `baton bench` burn-downs with 1, 2 and 4 (or -w's) worker
# replicas on one Postgres (1, 2, 4, 1, 2, 4, ...) and prints, per replica
# count, each run's executions/s and machine CPU ms per 1,000 executions,
# then the medians; -o writes the plot of throughput against replicas (SVG).
#
#   scripts/bench-replicas.sh [-s STAGES] [-n JOBS] [-c SLOTS] [-r REPS] [-w 1,2,4] [-o PLOT.svg] BIN
#
# SLOTS is --concurrency per stage per replica (default 0: adaptive slots).
# DATABASE_URL names the server (each run recreates <name>_bench).
set -euo pipefail
stages=2 jobs=200000 slots=0 reps=3 counts=1,2,4 plot=
while getopts "s:n:c:r:w:o:" opt; do
	case $opt in
	s) stages=$OPTARG ;;
	n) jobs=$OPTARG ;;
	c) slots=$OPTARG ;;
	r) reps=$OPTARG ;;
	w) counts=$OPTARG ;;
	o) plot=$OPTARG ;;
	*) sed -n '2,10p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
if [ $# -ne 1 ]; then
	sed -n '2,10p' "$0" >&2
	exit 2
fi
bin=$1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq "$reps"); do
	for w in ${counts//,/ }; do
		echo "bench-replicas: rep $r: $w replica(s)" >&2
		"$bin" bench --stages "$stages" --jobs "$jobs" --workers "$w" --concurrency "$slots" --rate 0 --rest-jobs 0 --json \
			2>/dev/null >>"$out/$w.jsonl"
	done
done
python3 - "$out" "$counts" "$plot" "$stages" "$jobs" <<'PY'
import json, statistics, sys
out, counts, plot, stages, jobs = sys.argv[1], [int(c) for c in sys.argv[2].split(",")], sys.argv[3], sys.argv[4], sys.argv[5]
rows = []
for w in counts:
    runs = [json.loads(l) for l in open("%s/%d.jsonl" % (out, w))]
    rate = [r["jobs_per_sec"] for r in runs]
    cpu = [r.get("cpu_ms_per_1000_jobs", 0) for r in runs]
    rows.append((w, rate, statistics.median(rate), statistics.median(cpu)))
    print("%d replica(s): executions/s %s median %.0f | CPU ms/1000 %s median %.0f" % (
        w, " ".join("%.0f" % x for x in rate), statistics.median(rate), " ".join("%.0f" % x for x in cpu), statistics.median(cpu)))
if plot:
    W, H, L, B = 480, 300, 70, 50
    top = max(max(r[1]) for r in rows) * 1.15
    x = lambda w: L + (counts.index(w) + 0.5) * (W - L - 20) / len(counts)
    y = lambda v: H - B - v / top * (H - B - 40)
    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (W, H),
           '<text x="%d" y="20" font-weight="bold">executions/s against worker replicas (%s stage(s), %s jobs)</text>' % (L - 50, stages, jobs),
           '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>' % (L, H - B, W - 20, H - B),
           '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>' % (L, 40, L, H - B)]
    for t in range(0, int(top) + 1, max(1000, int(top / 5) // 1000 * 1000)):
        svg.append('<text x="%d" y="%.1f" text-anchor="end" fill="#666">%d</text>' % (L - 6, y(t) + 4, t))
    pts = []
    for w, rate, med, _ in rows:
        for v in rate:
            svg.append('<circle cx="%.1f" cy="%.1f" r="3" fill="#a5b4fc"/>' % (x(w), y(v)))
        pts.append("%.1f,%.1f" % (x(w), y(med)))
        svg.append('<text x="%.1f" y="%d" text-anchor="middle">%d</text>' % (x(w), H - B + 18, w))
        svg.append('<text x="%.1f" y="%.1f" text-anchor="middle" fill="#4f46e5">%.0f</text>' % (x(w) + 28, y(med) + 4, med))
    svg.append('<polyline points="%s" fill="none" stroke="#4f46e5" stroke-width="2"/>' % " ".join(pts))
    svg.append('<text x="%d" y="%d" text-anchor="middle" fill="#666">replicas (medians joined; each run a dot)</text>' % ((L + W) // 2, H - 12))
    svg.append("</svg>")
    open(plot, "w").write("\n".join(svg) + "\n")
PY
