package api

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/baton-run/baton/internal/store"
)

// The dashboard's charts: the last hour of a queue's attempts (every
// queue's on the home page), a minute a column: completions and failures,
// and the p95 of the wait before a claim and of the handler's run. They are
// drawn here, as SVG, from db.ChartMinutes: no script, nothing fetched from
// elsewhere. The page loads them after itself and again every chartTTL; one
// query serves every viewer for that long, and a query that would take more
// than chartTimeout (an hour of a very busy history) is given up.

const (
	chartTTL     = 10 * time.Second
	chartTimeout = 3 * time.Second
	// chartsKept bounds the charts held at once (one per queue viewed).
	chartsKept = 1000
)

// chartCache holds the charts drawn in the last chartTTL, by queue ("" for
// every queue).
type chartCache struct {
	mu      sync.Mutex
	entries map[string]chartEntry
}

type chartEntry struct {
	at     time.Time
	charts charts
}

// charts is what the template shows.
type charts struct {
	Throughput, Latency template.HTML
	// Done and Failed are the hour's totals; Unavailable says why there is
	// no chart.
	Done, Failed int64
	Unavailable  string
}

// chartsFragment answers the charts of the queue named by ?queue= (of every
// queue without it), as a fragment the page swaps in.
func (s *Server) chartsFragment(w http.ResponseWriter, r *http.Request) {
	queue := r.URL.Query().Get("queue")
	if queue != "" && !store.ValidQueueName(queue) {
		s.renderError(w, r, http.StatusBadRequest, "queue must be a queue name.")
		return
	}
	c := s.chartsOf(r.Context(), queue)
	s.render(w, r, http.StatusOK, "charts", map[string]any{"Charts": c})
}

func (s *Server) chartsOf(ctx context.Context, queue string) charts {
	s.charts.mu.Lock()
	e, ok := s.charts.entries[queue]
	s.charts.mu.Unlock()
	if ok && time.Since(e.at) < chartTTL {
		return e.charts
	}
	qctx, cancel := context.WithTimeout(ctx, chartTimeout)
	defer cancel()
	var only *string
	if queue != "" {
		only = &queue
	}
	rows, err := store.New(s.pool).ChartMinutes(qctx, only)
	var c charts
	switch {
	case errors.Is(err, context.DeadlineExceeded) || qctx.Err() != nil && ctx.Err() == nil:
		c.Unavailable = fmt.Sprintf("The last hour holds more attempts than can be charted in %s: see baton report throughput_hourly.", chartTimeout)
	case err != nil:
		s.log.Warn("drawing the dashboard's charts", "queue", queue, "error", store.MapError(err))
		c.Unavailable = "The charts could not be read from the database."
	default:
		c = drawCharts(rows)
	}
	s.charts.mu.Lock()
	defer s.charts.mu.Unlock()
	if s.charts.entries == nil || len(s.charts.entries) >= chartsKept {
		s.charts.entries = map[string]chartEntry{}
	}
	s.charts.entries[queue] = chartEntry{at: time.Now(), charts: c}
	return c
}

// Each chart is chartWidth by chartHeight, a column (of chartColumn) a
// minute and room for the axis labels.
const (
	chartLeft   = 40 // the y axis' labels
	chartColumn = 10
	chartWidth  = chartLeft + 60*chartColumn
	chartHeight = 150
	chartBottom = 20 // the x axis' labels
)

func drawCharts(rows []store.ChartMinutesRow) charts {
	var c charts
	maxCount, maxSeconds := int64(0), 0.0
	for _, r := range rows {
		c.Done += r.Succeeded
		c.Failed += r.Failed
		maxCount = max(maxCount, r.Succeeded+r.Failed)
		maxSeconds = max(maxSeconds, r.WaitP95Seconds, r.RunP95Seconds)
	}
	top := niceCeil(float64(maxCount))
	var b strings.Builder
	startChart(&b, "chart-throughput", "Completions and failures per minute, the last hour", top, func(v float64) string { return fmt.Sprintf("%g", v) })
	for i, r := range rows {
		x := chartLeft + i*chartColumn
		hDone := scale(float64(r.Succeeded), top)
		hFailed := scale(float64(r.Failed), top)
		fmt.Fprintf(&b, `<g><title>%s: %d succeeded, %d failed</title>`, r.Minute.UTC().Format("15:04"), r.Succeeded, r.Failed)
		fmt.Fprintf(&b, `<rect class="done" x="%d" y="%.1f" width="%d" height="%.1f"/>`, x+1, plotBottom-hDone, chartColumn-2, hDone)
		fmt.Fprintf(&b, `<rect class="failed" x="%d" y="%.1f" width="%d" height="%.1f"/>`, x+1, plotBottom-hDone-hFailed, chartColumn-2, hFailed)
		b.WriteString(`</g>`)
	}
	closeChart(&b, rows)
	c.Throughput = template.HTML(b.String()) // numbers and times only

	b.Reset()
	top = niceCeilSeconds(maxSeconds)
	startChart(&b, "chart-latency", "p95 wait before a claim and p95 run, per minute, the last hour", top, secondsLabel)
	for _, line := range []struct {
		class string
		value func(store.ChartMinutesRow) float64
	}{
		{"wait", func(r store.ChartMinutesRow) float64 { return r.WaitP95Seconds }},
		{"run", func(r store.ChartMinutesRow) float64 { return r.RunP95Seconds }},
	} {
		fmt.Fprintf(&b, `<polyline class="%s" points="`, line.class)
		for i, r := range rows {
			fmt.Fprintf(&b, "%d,%.1f ", chartLeft+i*chartColumn+chartColumn/2, plotBottom-scale(line.value(r), top))
		}
		b.WriteString(`"/>`)
	}
	closeChart(&b, rows)
	c.Latency = template.HTML(b.String())
	return c
}

const plotBottom = chartHeight - chartBottom

func scale(v, top float64) float64 {
	if top <= 0 {
		return 0
	}
	return v / top * (plotBottom - 6)
}

// startChart starts a chart's SVG: its frame, and the y axis from 0 to top.
func startChart(b *strings.Builder, id, label string, top float64, format func(float64) string) {
	fmt.Fprintf(b, `<svg id="%s" class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s"><title>%s</title>`,
		id, chartWidth, chartHeight, label, label)
	for _, f := range []float64{0, 0.5, 1} {
		y := plotBottom - scale(top*f, top)
		fmt.Fprintf(b, `<line class="grid" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`, chartLeft, y, chartWidth, y)
		fmt.Fprintf(b, `<text class="axis" x="%d" y="%.1f" text-anchor="end">%s</text>`, chartLeft-4, y+4, format(top*f))
	}
}

// closeChart writes the x axis (the hour's first minute, its middle and the
// current one, in UTC) and ends the SVG.
func closeChart(b *strings.Builder, rows []store.ChartMinutesRow) {
	for _, i := range []int{0, 30, 59} {
		if i < len(rows) {
			anchor := map[int]string{0: "start", 30: "middle", 59: "end"}[i]
			fmt.Fprintf(b, `<text class="axis" x="%d" y="%d" text-anchor="%s">%s</text>`,
				chartLeft+i*chartColumn+chartColumn/2, chartHeight-4, anchor, rows[i].Minute.UTC().Format("15:04 UTC"))
		}
	}
	b.WriteString(`</svg>`)
}

// niceCeil rounds a count up to 1, 2 or 5 times a power of ten (at least 1).
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// niceCeilSeconds is niceCeil for seconds, down to a millisecond.
func niceCeilSeconds(v float64) float64 {
	if v <= 0.001 {
		return 0.001
	}
	return niceCeil(v*1000) / 1000
}

func secondsLabel(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 1:
		return fmt.Sprintf("%gms", math.Round(v*1e6)/1e3)
	default:
		return fmt.Sprintf("%gs", math.Round(v*1e3)/1e3)
	}
}
