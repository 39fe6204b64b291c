package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
)

// baton bench --adapter speaks the public Postgres job-queue benchmark's
// adapter contract (CONTRIBUTING_ADAPTERS.md of
// github.com/hardbyte/postgresql-job-queue-benchmarking): a descriptor line
// first, then every metric on every tick, ticks on wall-clock boundaries,
// the offered rate credited on wall-clock time (within 2 % over 60 s), in
// the database DATABASE_URL names, and SIGTERM ends it cleanly.
func TestBenchAdapterSpeaksTheHarnessContract(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	const rate, ticks = 300, 61
	// The harness sets the rate through a file it rewrites for its
	// high-load phase: it wins over PRODUCER_RATE.
	control := writeFile(t, "producer_rate.txt", "300\n")
	cmd := exec.Command(batonBin, "bench", "--adapter")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+u, "SCENARIO=long_horizon", "PRODUCER_MODE=fixed", "PRODUCER_RATE=100", "PRODUCER_RATE_CONTROL_FILE="+control,
		"PRODUCER_BATCH_MAX=128", "PRODUCER_BATCH_MS=10", "WORKER_COUNT=16", "JOB_PAYLOAD_BYTES=256", "JOB_WORK_MS=1", "SAMPLE_EVERY_S=1")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	w := startProc(t, cmd)
	lines := bufio.NewScanner(stdout)

	require.True(t, lines.Scan(), w.stderr.String())
	var d map[string]any
	require.NoError(t, json.Unmarshal(lines.Bytes(), &d), lines.Text())
	require.Equal(t, "descriptor", d["kind"])
	require.Equal(t, "baton", d["system"])
	var manifest struct {
		System      string   `json:"system"`
		EventTables []string `json:"event_tables"`
	}
	raw, err := os.ReadFile("../../bench/portable/adapter.json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &manifest))
	require.Equal(t, manifest.System, d["system"])
	require.Subset(t, d["event_tables"], toAny(manifest.EventTables), "the descriptor's tables cover the manifest's")
	for _, k := range []string{"extensions", "version", "schema_version", "db_name", "started_at"} {
		require.Contains(t, d, k)
	}

	type sample struct {
		T       string  `json:"t"`
		System  string  `json:"system"`
		Kind    string  `json:"kind"`
		Subject string  `json:"subject_kind"`
		Metric  string  `json:"metric"`
		Value   float64 `json:"value"`
		Window  int     `json:"window_s"`
	}
	metrics := []string{"claim_p50_ms", "claim_p95_ms", "claim_p99_ms", "enqueue_rate", "completion_rate", "queue_depth"}
	var stamps []time.Time
	byTick := map[string]map[string]float64{}
	for len(stamps) < ticks+1 && lines.Scan() {
		var s sample
		require.NoError(t, json.Unmarshal(lines.Bytes(), &s), lines.Text())
		require.Equal(t, "baton", s.System)
		require.Equal(t, "adapter", s.Kind)
		require.Equal(t, "adapter", s.Subject)
		if byTick[s.T] == nil {
			at, err := time.Parse("2006-01-02T15:04:05.000Z", s.T)
			require.NoError(t, err, s.T)
			require.Equal(t, at.Truncate(time.Second), at, "ticks fall on whole seconds (SAMPLE_EVERY_S=1)")
			stamps = append(stamps, at)
			byTick[s.T] = map[string]float64{}
		}
		byTick[s.T][s.Metric] = s.Value
	}
	require.Len(t, stamps, ticks+1, "the adapter stopped writing: %s", w.stderr.String())
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	stopping := time.Now()
	require.Equal(t, 0, w.wait(t), w.stderr.String())
	require.Less(t, time.Since(stopping), 5*time.Second, "SIGTERM ends the adapter within 5 s")

	stamps = stamps[:ticks] // the last one may be cut short by the signal
	enqueued := 0.0
	for i, at := range stamps {
		tick := byTick[at.Format("2006-01-02T15:04:05.000Z")]
		for _, m := range metrics {
			require.Contains(t, tick, m, "tick %s", at)
		}
		require.LessOrEqual(t, tick["claim_p50_ms"], tick["claim_p95_ms"])
		require.LessOrEqual(t, tick["claim_p95_ms"], tick["claim_p99_ms"])
		if i > 0 {
			require.Equal(t, time.Second, at.Sub(stamps[i-1]), "one tick a second, none skipped")
			enqueued += tick["enqueue_rate"] // over one second each
		}
	}
	offered := float64(rate * (ticks - 1))
	require.InEpsilon(t, offered, enqueued, 0.02, "the producer offers PRODUCER_RATE on wall-clock time")
	require.Positive(t, byTick[stamps[ticks-1].Format("2006-01-02T15:04:05.000Z")]["completion_rate"])
	require.Greater(t, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'bench'"), int(offered*0.9),
		"the jobs are in the database DATABASE_URL names")
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
