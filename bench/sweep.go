package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
)

// sweepPoint is one burn-down of a sweep over slot counts.
type sweepPoint struct {
	Concurrency int `json:"concurrency"`
	burn
}

// sweep burns down the same backlog once per slot count of Config.Sweep. The
// slot count bounds the claim batch, so the sweep shows throughput against
// batch size.
func (rn *run) sweep(ctx context.Context, r Result, out io.Writer) error {
	svgPath, asJSON := rn.cfg.SVG, rn.cfg.JSON
	var points []sweepPoint
	for _, c := range rn.cfg.Sweep {
		if _, err := rn.pool.Exec(ctx, "TRUNCATE baton.jobs, baton.job_events"); err != nil {
			return fmt.Errorf("bench: emptying the tables between runs: %w", err)
		}
		b, rs, err := rn.burnDown(ctx, c)
		if err != nil {
			return err
		}
		rs.stop()
		points = append(points, sweepPoint{Concurrency: c, burn: b})
	}
	if svgPath != "" {
		if err := os.WriteFile(svgPath, []byte(sweepSVG(r, points)), 0o644); err != nil {
			return fmt.Errorf("bench: --svg: %w", err)
		}
	}
	if asJSON {
		return json.NewEncoder(out).Encode(map[string]any{
			"stages": r.Stages, "jobs": r.Jobs, "workers": r.Workers, "commit_rate": r.CommitRate, "sweep": points,
		})
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "slots per stage\tmean claim batch\tmean completion batch\tjobs/s\thand-offs/s\t÷ commit rate\t\n")
	for _, p := range points {
		fmt.Fprintf(tw, "%d\t%.1f\t%.1f\t%.0f\t%.0f\t%.2f×\t\n", p.Concurrency, p.MeanClaimBatch, p.MeanCompleteBatch,
			p.JobsPerSec, p.HandoffsPerSec, p.JobsPerSec/r.CommitRate)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "commit rate of the server (single-row, durable): %.0f/s\n", r.CommitRate)
	return err
}

// sweepSVG plots executions per second against the mean claim batch (log
// scale), each point labelled with its slot count.
func sweepSVG(r Result, points []sweepPoint) string {
	const w, h, left, right, top, bottom = 720, 420, 70, 30, 50, 60
	maxY, maxX := 0.0, 1.0
	for _, p := range points {
		maxY, maxX = math.Max(maxY, p.JobsPerSec), math.Max(maxX, p.MeanClaimBatch)
	}
	yTop := niceCeil(maxY)
	xTop := math.Pow(10, math.Ceil(math.Log10(maxX*1.2)))
	x := func(v float64) float64 {
		return left + (w-left-right)*math.Log10(math.Max(v, 1))/math.Log10(xTop)
	}
	y := func(v float64) float64 { return h - bottom - (h-top-bottom)*v/yTop }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#fff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">Baton, %d stage(s): job executions/s against the mean claim batch</text>`+"\n", left, r.Stages)
	fmt.Fprintf(&b, `<text x="%d" y="40" fill="#666">%d jobs, %d replica(s); commit rate of the server %.0f/s; labels: slots per stage</text>`+"\n", left, r.Jobs, r.Workers, r.CommitRate)
	for i := 0; i <= 5; i++ {
		v := yTop * float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e5e7eb"/>`+"\n", left, w-right, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#444">%.0f</text>`+"\n", left-8, y(v)+4, v)
	}
	for v := 1.0; v <= xTop; v *= 10 {
		for _, m := range []float64{1, 3} {
			if tick := v * m; tick <= xTop {
				fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#e5e7eb"/>`+"\n", x(tick), x(tick), top, h-bottom)
				fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#444">%g</text>`+"\n", x(tick), h-bottom+18, tick)
			}
		}
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#444">mean jobs per claim statement (log scale)</text>`+"\n", (left+w-right)/2, h-14)
	fmt.Fprintf(&b, `<text transform="translate(18 %d) rotate(-90)" text-anchor="middle" fill="#444">job executions per second</text>`+"\n", (top+h-bottom)/2)
	var path []string
	for _, p := range points {
		path = append(path, fmt.Sprintf("%.1f,%.1f", x(p.MeanClaimBatch), y(p.JobsPerSec)))
	}
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="#4f46e5" stroke-width="2"/>`+"\n", strings.Join(path, " "))
	for _, p := range points {
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="#4f46e5"/>`+"\n", x(p.MeanClaimBatch), y(p.JobsPerSec))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#4f46e5">%d</text>`+"\n", x(p.MeanClaimBatch), y(p.JobsPerSec)-10, p.Concurrency)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
