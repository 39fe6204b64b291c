#!/usr/bin/env bash
# make demo: migrate, start a worker on examples/pipeline.yaml, submit example
# jobs, and show them moving through both stages. The database is make
# run's (dev_database, in scripts/postgres.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/postgres.sh
dev_database || exit 1

baton=bin/baton

echo "==> baton migrate up"
$baton migrate up

echo "==> baton worker --config examples/pipeline.yaml   (log: bin/worker.log)"
$baton worker --config examples/pipeline.yaml --id example-worker 2>bin/worker.log &
worker=$!
trap 'kill -TERM $worker 2>/dev/null && wait $worker' EXIT

published() { $baton report | awk '$1 == "publish" { print $6 }'; }
before=$(( $(published) + 0 ))

echo "==> submitting 5 jobs to queue resize (one with --delay 2s)"
first=""
for img in cat dog owl fox; do
	id=$($baton submit resize "{\"image\": \"$img.png\"}")
	first=${first:-$id}
	echo "    job $id: $img.png"
done
id=$($baton submit resize '{"image": "late.png"}' --delay 2s)
echo "    job $id: late.png (delayed 2s)"

# Wait until publish has 5 more successes than before (the database may hold earlier runs).
for _ in $(seq 1 150); do
	[ "$(( $(published || echo 0) + 0 ))" -ge $((before + 5)) ] && break
	sleep 0.2
done

echo "==> baton report"
$baton report
echo "==> baton status $first   (its hand-off is in \"children\")"
$baton status "$first"
child=$($baton status "$first" | awk '/"children"/ { getline; gsub(/[ ,]/, ""); print; exit }')
echo "==> baton status $child   (the publish stage's job, made from job $first's result)"
$baton status "$child" | head -20
