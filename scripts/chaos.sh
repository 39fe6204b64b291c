#!/usr/bin/env bash
# Runs the fault-injection suite (chaos/, build tag chaos). CHAOS_PROFILE=full
# for the full profile. Prints one figure line per scenario; on failure, the
# whole log.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if go test -tags chaos -count=1 -timeout "${CHAOS_TIMEOUT:-20m}" -v -run . ./chaos/ >"$log" 2>&1; then
	grep -E '^(--- |\s+--- |\s+scenarios_test\.go:[0-9]+: |ok|PASS)' "$log" | sed -E 's/^\s+scenarios_test\.go:[0-9]+: /    /'
else
	cat "$log"
	echo "chaos: FAILED (full log above)" >&2
	exit 1
fi
