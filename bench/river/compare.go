package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
)

// compare interleaves `baton bench` (the binary at baton, against batonDSN)
// with River on the same server: reps rounds of Baton 2 stages, River
// pipeline, Baton 1 stage, River no-op; then medians and ratios.
func compare(c compareConfig, out io.Writer) error {
	runs := map[string][]float64{}
	for rep := 1; rep <= c.reps; rep++ {
		for _, step := range []string{"baton-2", "river-pipeline", "baton-1", "river-noop"} {
			fmt.Fprintf(os.Stderr, "compare: rep %d: %s\n", rep, step)
			var v float64
			var err error
			switch step {
			case "baton-2":
				v, err = batonRun(c, "2", c.batonSlots)
			case "baton-1":
				v, err = batonRun(c, "1", c.batonNoopSlots)
			case "river-pipeline":
				v, err = riverRun(c, "pipeline", c.maxWorkers)
			case "river-noop":
				v, err = riverRun(c, "noop", c.noopWorkers)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", step, err)
			}
			runs[step] = append(runs[step], v)
		}
	}
	med := func(k string) float64 {
		v := slices.Clone(runs[k])
		slices.Sort(v)
		return v[len(v)/2]
	}
	payload := "7-byte"
	if c.payloadBytes > 0 {
		payload = strconv.Itoa(c.payloadBytes) + "-byte"
	}
	fmt.Fprintf(out, "| workload (%d jobs, %s payloads, %d reps, medians) | Baton | River v0.51.2 | Baton ÷ River |\n|---|---|---|---|\n", c.n, payload, c.reps)
	fmt.Fprintf(out, "| A → B pipeline, hand-offs/s | %.0f %v | %.0f %v | %.1f× |\n",
		med("baton-2"), round(runs["baton-2"]), med("river-pipeline"), round(runs["river-pipeline"]), med("baton-2")/med("river-pipeline"))
	fmt.Fprintf(out, "| one stage, no-op jobs/s | %.0f %v | %.0f %v | %.1f× |\n",
		med("baton-1"), round(runs["baton-1"]), med("river-noop"), round(runs["river-noop"]), med("baton-1")/med("river-noop"))
	return nil
}

func round(v []float64) []int {
	r := make([]int, len(v))
	for i, x := range v {
		r[i] = int(x + 0.5)
	}
	return r
}

// compareConfig is what compare runs: the baton binary and the server of
// each, the backlog, and each system's settings.
type compareConfig struct {
	baton, batonDSN, riverDSN         string
	n, reps, payloadBytes             int
	maxWorkers, noopWorkers, maxConns int // River's
	batonSlots, batonNoopSlots        int // baton bench --concurrency (0: adaptive slots)
}

// batonRun returns hand-offs/s (2 stages) or jobs/s (1 stage).
func batonRun(c compareConfig, stages string, slots int) (float64, error) {
	// Slots 0 runs Baton at its defaults (--concurrency 0: adaptive slots).
	cmd := exec.Command(c.baton, "bench", "--stages", stages, "--jobs", strconv.Itoa(c.n), "--concurrency", strconv.Itoa(slots),
		"--payload-bytes", strconv.Itoa(c.payloadBytes), "--rate", "0", "--rest-jobs", "0", "--json")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+c.batonDSN)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return 0, err
	}
	var r struct {
		JobsPerSec     float64 `json:"jobs_per_sec"`
		HandoffsPerSec float64 `json:"handoffs_per_sec"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return 0, err
	}
	if stages == "2" {
		return r.HandoffsPerSec, nil
	}
	return r.JobsPerSec, nil
}

func riverRun(c compareConfig, mode string, maxWorkers int) (float64, error) {
	var buf bytes.Buffer
	if err := runTo(&buf, c.riverDSN, mode, c.n, maxWorkers, c.maxConns, c.payloadBytes); err != nil {
		return 0, err
	}
	var r result
	if err := json.Unmarshal(buf.Bytes(), &r); err != nil {
		return 0, err
	}
	return r.JobsPerSec, nil
}
