package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/worker"
)

// The soak keeps this many jobs waiting ahead of the replicas: enough that
// no slot waits for work, few enough that the run measures a steady flow
// with retention on, not a burn-down.
const soakBacklog = 10_000

// soakWindow is what the soak measured over one window of jobs.
type soakWindow struct {
	// JobsDone counts jobs through both stages (A and B) at the window's end.
	JobsDone         int64   `json:"jobs_done"`
	Seconds          float64 `json:"seconds"`
	ExecutionsPerSec float64 `json:"executions_per_sec"`
	// ClaimP99Ms and CompletionP99Ms are the worker's statement round trips
	// (baton_claim_duration_seconds, baton_completion_duration_seconds) in
	// the window, read from their buckets (each 1.32 times the last).
	ClaimP99Ms      float64 `json:"claim_p99_ms"`
	CompletionP99Ms float64 `json:"completion_p99_ms"`
	// EndToEndP99Ms runs from a job's submit to the end of its B stage, over
	// the jobs that ended in the window's last 10 seconds (or half the
	// retention, so that retention has not pruned them): the wait behind
	// the backlog included.
	EndToEndP99Ms float64 `json:"end_to_end_p99_ms"`
	// TableBytes, IndexBytes and DeadRows add up every Baton table; Tables
	// has each (the table_health view).
	TableBytes               int64                  `json:"table_bytes"`
	IndexBytes               int64                  `json:"index_bytes"`
	DeadRows                 int64                  `json:"dead_rows"`
	OldestTransactionSeconds float64                `json:"oldest_transaction_seconds"`
	Tables                   []store.TableHealthRow `json:"tables"`
}

// soakResult is the soak's report, with its targets (issue 13): the last
// window's throughput at least 0.9 of the first, the size at the end at
// most 1.5 times the size at 1M jobs, claim p99 within 2x.
type soakResult struct {
	Jobs          int          `json:"jobs"`
	Window        int          `json:"window"`
	RetainSeconds float64      `json:"retain_seconds"`
	Workers       int          `json:"workers"`
	Concurrency   int          `json:"concurrency"`
	Windows       []soakWindow `json:"windows"`
	// LastOverFirst is the last window's executions/s over the first's.
	LastOverFirst float64 `json:"last_over_first_throughput"`
	// SizeGrowth is the tables' and indexes' size at the end over their size
	// at the first window that ended at or past 1M jobs (or the first window,
	// in a shorter soak).
	SizeGrowth float64 `json:"size_growth"`
	// ClaimP99Spread is the highest window's claim p99 over the lowest's.
	ClaimP99Spread float64 `json:"claim_p99_spread"`
}

// soak pushes Config.Jobs through A -> B with retention Config.Retain,
// keeping soakBacklog jobs waiting, and reports every Config.Window jobs.
func (rn *run) soak(ctx context.Context, out io.Writer) error {
	pool, retain, svgPath, asJSON := rn.pool, rn.cfg.Retain, rn.cfg.SVG, rn.cfg.JSON
	r := soakResult{Jobs: rn.cfg.Jobs, Window: rn.cfg.Window, RetainSeconds: retain.Seconds(), Workers: rn.cfg.Workers, Concurrency: rn.cfg.Concurrency}
	rs, err := startReplicas(ctx, rn.target, 2, r.Concurrency, r.Workers,
		worker.Retention{Succeeded: retain, Dead: retain, Canceled: retain})
	if err != nil {
		return err
	}
	defer rs.stop()
	executions := func() int64 {
		var n int64
		for _, w := range rs.workers {
			n += w.Stats().Succeeded
		}
		return n
	}
	pctx, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	produced := make(chan error, 1)
	go func() { produced <- produce(pctx, pool, r.Jobs, executions) }()

	rn.progress("soak: %d jobs through A -> B, retaining finished jobs %s, a window every %d jobs", r.Jobs, retain, r.Window)
	start, last := time.Now(), time.Now()
	claims, completions := rs.histogram("baton_claim_duration_seconds"), rs.histogram("baton_completion_duration_seconds")
	var lastDone int64
	for next := int64(r.Window); next <= int64(r.Jobs); next += int64(r.Window) {
		for executions() < 2*next {
			select {
			case err := <-produced:
				if err != nil {
					return err
				}
				produced = nil // done submitting; the replicas go on
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
		now := time.Now()
		done := executions() / 2
		c, k := rs.histogram("baton_claim_duration_seconds"), rs.histogram("baton_completion_duration_seconds")
		w := soakWindow{
			JobsDone:         done,
			Seconds:          now.Sub(last).Seconds(),
			ExecutionsPerSec: float64(2*(done-lastDone)) / now.Sub(last).Seconds(),
			ClaimP99Ms:       c.quantileSince(claims, 0.99) * 1000,
			CompletionP99Ms:  k.quantileSince(completions, 0.99) * 1000,
		}
		if err := measureTables(ctx, pool, min(10*time.Second, retain/2), &w); err != nil {
			return err
		}
		r.Windows = append(r.Windows, w)
		rn.progress("soak: %d jobs done, %.0f executions/s, claim p99 %.1f ms, %d MB in tables and indexes",
			w.JobsDone, w.ExecutionsPerSec, w.ClaimP99Ms, (w.TableBytes+w.IndexBytes)>>20)
		last, lastDone, claims, completions = now, done, c, k
	}
	rn.progress("soak: done in %s", time.Since(start).Round(time.Second))
	r.summarize()
	if svgPath != "" {
		if err := os.WriteFile(svgPath, []byte(soakSVG(r)), 0o644); err != nil {
			return fmt.Errorf("bench: --svg: %w", err)
		}
	}
	if asJSON {
		return json.NewEncoder(out).Encode(r)
	}
	return r.print(out)
}

// produce submits jobs to queue a in batches whenever fewer than
// soakBacklog of them wait to be worked (counted from the replicas'
// executions: each job is two, A and B).
func produce(ctx context.Context, pool *pgxpool.Pool, jobs int, executions func() int64) error {
	batch := noopJobs(2000, 0)
	for submitted := 0; submitted < jobs; {
		if 2*int64(submitted)-executions() >= 2*soakBacklog {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(5 * time.Millisecond):
			}
			continue
		}
		n := min(len(batch), jobs-submitted)
		if _, err := store.Submit(ctx, pool, batch[:n]...); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("bench: soak: submitting: %w", err)
		}
		submitted += n
	}
	return nil
}

// measureTables reads the sizes, dead rows, oldest transaction and the
// end-to-end p99 of the jobs that ended within recent into w.
func measureTables(ctx context.Context, pool *pgxpool.Pool, recent time.Duration, w *soakWindow) error {
	q := store.New(pool)
	tables, err := q.TableHealth(ctx)
	if err != nil {
		return fmt.Errorf("bench: soak: reading table_health: %w", err)
	}
	w.Tables = tables
	for _, t := range tables {
		w.TableBytes, w.IndexBytes, w.DeadRows = w.TableBytes+t.TableBytes, w.IndexBytes+t.IndexBytes, w.DeadRows+t.DeadRows
	}
	if w.OldestTransactionSeconds, err = q.MetricsOldestTransaction(ctx); err != nil {
		return err
	}
	// B's jobs that ended lately, with the A job they came from (retention
	// keeps both for a while): jobs_finished_idx finds them.
	err = pool.QueryRow(ctx, `
		SELECT coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM b.finished_at - a.created_at)), 0) * 1000
		FROM baton.jobs b JOIN baton.jobs a ON a.id = b.parent_id
		WHERE b.queue = 'b' AND b.state = 'succeeded' AND b.finished_at > now() - $1::bigint * interval '1 microsecond'`,
		recent.Microseconds()).Scan(&w.EndToEndP99Ms)
	if err != nil {
		return fmt.Errorf("bench: soak: end-to-end latency: %w", err)
	}
	return nil
}

func (r *soakResult) summarize() {
	if len(r.Windows) == 0 {
		return
	}
	first, end := r.Windows[0], r.Windows[len(r.Windows)-1]
	r.LastOverFirst = end.ExecutionsPerSec / first.ExecutionsPerSec
	at1M := first
	if i := slices.IndexFunc(r.Windows, func(w soakWindow) bool { return w.JobsDone >= 1_000_000 }); i >= 0 {
		at1M = r.Windows[i]
	}
	r.SizeGrowth = float64(end.TableBytes+end.IndexBytes) / float64(at1M.TableBytes+at1M.IndexBytes)
	lo, hi := math.Inf(1), 0.0
	for _, w := range r.Windows {
		lo, hi = math.Min(lo, w.ClaimP99Ms), math.Max(hi, w.ClaimP99Ms)
	}
	if lo > 0 {
		r.ClaimP99Spread = hi / lo
	}
}

func (r soakResult) print(out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "jobs done\texecutions/s\tclaim p99 ms\tcompletion p99 ms\tend to end p99 ms\ttables MB\tindexes MB\tdead rows\toldest tx s\t\n")
	for _, w := range r.Windows {
		fmt.Fprintf(tw, "%d\t%.0f\t%.1f\t%.1f\t%.0f\t%d\t%d\t%d\t%.1f\t\n", w.JobsDone, w.ExecutionsPerSec, w.ClaimP99Ms,
			w.CompletionP99Ms, w.EndToEndP99Ms, w.TableBytes>>20, w.IndexBytes>>20, w.DeadRows, w.OldestTransactionSeconds)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "last window's throughput / first's: %.2f (target >= 0.90)\n"+
		"size at the end / at 1M jobs: %.2f (target <= 1.50)\n"+
		"claim p99, highest window / lowest: %.2f (target <= 2.00)\n", r.LastOverFirst, r.SizeGrowth, r.ClaimP99Spread)
	return err
}

// histogram is one of the workers' histograms, summed over their queues and
// the replicas: cumulative counts per upper bound, and the count of all
// observations.
type histogram struct {
	bounds []float64
	counts []uint64
	total  uint64
}

func (rs *replicas) histogram(name string) histogram {
	var h histogram
	for _, reg := range rs.metrics {
		families, _ := reg.Gather()
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
			for _, m := range f.GetMetric() {
				for i, b := range m.GetHistogram().GetBucket() {
					if i == len(h.bounds) {
						h.bounds, h.counts = append(h.bounds, b.GetUpperBound()), append(h.counts, 0)
					}
					h.counts[i] += b.GetCumulativeCount()
				}
				h.total += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return h
}

// quantileSince is the q-quantile of the observations made since earlier,
// interpolated linearly within its bucket; beyond the last bound, the last
// bound.
func (h histogram) quantileSince(earlier histogram, q float64) float64 {
	count := func(x histogram, i int) float64 {
		if i < len(x.counts) {
			return float64(x.counts[i])
		}
		return 0
	}
	total := float64(h.total - earlier.total)
	if total == 0 || len(h.bounds) == 0 {
		return 0
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for i, bound := range h.bounds {
		in := count(h, i) - count(earlier, i)
		if in >= rank {
			return lower + (bound-lower)*(rank-below)/math.Max(in-below, 1)
		}
		lower, below = bound, in
	}
	return h.bounds[len(h.bounds)-1]
}

// soakSVG plots executions/s and the size of the tables and their indexes
// against jobs done.
func soakSVG(r soakResult) string {
	const w, h, left, right, top, bottom = 760, 420, 70, 80, 50, 60
	maxX, maxY, maxMB := 1.0, 0.0, 0.0
	for _, p := range r.Windows {
		maxX = math.Max(maxX, float64(p.JobsDone))
		maxY = math.Max(maxY, p.ExecutionsPerSec)
		maxMB = math.Max(maxMB, float64(p.TableBytes+p.IndexBytes)/(1<<20))
	}
	yTop, mbTop := niceCeil(maxY), niceCeil(maxMB)
	x := func(v float64) float64 { return left + (w-left-right)*v/maxX }
	y := func(v, scale float64) float64 { return h - bottom - (h-top-bottom)*v/scale }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#fff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">Baton soak: %d jobs through A → B, retaining finished jobs %gs</text>`+"\n", left, r.Jobs, r.RetainSeconds)
	fmt.Fprintf(&b, `<text x="%d" y="40" fill="#666">per window of %d jobs; %d replica(s) × %s per stage</text>`+"\n", left, r.Window, r.Workers, slotsName(r.Concurrency))
	for i := 0; i <= 5; i++ {
		v := float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e5e7eb"/>`+"\n", left, w-right, y(v, 1), y(v, 1))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#4f46e5">%.0f</text>`+"\n", left-8, y(v, 1)+4, v*yTop)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" fill="#d97706">%.0f</text>`+"\n", w-right+8, y(v, 1)+4, v*mbTop)
	}
	for i := 0; i <= 5; i++ {
		v := maxX * float64(i) / 5
		label := fmt.Sprintf("%.1fM", v/1e6)
		if maxX < 2e6 {
			label = fmt.Sprintf("%.0fk", v/1e3)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#444">%s</text>`+"\n", x(v), h-bottom+18, label)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#444">jobs done (both stages)</text>`+"\n", (left+w-right)/2, h-14)
	fmt.Fprintf(&b, `<text transform="translate(18 %d) rotate(-90)" text-anchor="middle" fill="#4f46e5">job executions per second</text>`+"\n", (top+h-bottom)/2)
	fmt.Fprintf(&b, `<text transform="translate(%d %d) rotate(90)" text-anchor="middle" fill="#d97706">MB in Baton's tables and indexes</text>`+"\n", w-16, (top+h-bottom)/2)
	var rate, size []string
	for _, p := range r.Windows {
		rate = append(rate, fmt.Sprintf("%.1f,%.1f", x(float64(p.JobsDone)), y(p.ExecutionsPerSec, yTop)))
		size = append(size, fmt.Sprintf("%.1f,%.1f", x(float64(p.JobsDone)), y(float64(p.TableBytes+p.IndexBytes)/(1<<20), mbTop)))
	}
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="#4f46e5" stroke-width="2"/>`+"\n", strings.Join(rate, " "))
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="#d97706" stroke-width="2" stroke-dasharray="6 3"/>`+"\n", strings.Join(size, " "))
	b.WriteString("</svg>\n")
	return b.String()
}
