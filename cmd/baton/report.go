package main

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/baton-run/baton/internal/store"
)

// report is one of the reporting views of docs/reports.md.
type report struct {
	name string
	// rows reads the view, filtered to one queue unless queue is "", and
	// returns a slice of structs whose json tags name the columns.
	rows func(ctx context.Context, q *store.Queries, queue string) (any, error)
}

// queueSummary is a row of the queue_summary view, with the queue's paused
// flag (baton queue list shows its retention too).
type queueSummary struct {
	Queue                  string  `json:"queue"`
	Scheduled              int64   `json:"scheduled"`
	Available              int64   `json:"available"`
	Running                int64   `json:"running"`
	Retrying               int64   `json:"retrying"`
	Succeeded              int64   `json:"succeeded"`
	Dead                   int64   `json:"dead"`
	Canceled               int64   `json:"canceled"`
	OldestAvailableSeconds float64 `json:"oldest_available_seconds"`
	Paused                 bool    `json:"paused"`
}

var reports = []report{
	{"queue_summary", func(ctx context.Context, q *store.Queries, queue string) (any, error) {
		p := store.QueueSummaryParams{MaxQueues: math.MaxInt32}
		if queue != "" {
			p.Only = &queue
		}
		rows, err := q.QueueSummary(ctx, p)
		var out []queueSummary
		for _, r := range rows {
			if queue == "" || r.Queue == queue {
				out = append(out, queueSummary{r.Queue, r.Scheduled, r.Available, r.Running, r.Retrying,
					r.Succeeded, r.Dead, r.Canceled, r.OldestAvailableSeconds, r.Paused})
			}
		}
		return out, err
	}},
	{"backlog_by_priority", func(ctx context.Context, q *store.Queries, queue string) (any, error) {
		return q.ReportBacklogByPriority(ctx, queue)
	}},
	{"groups", func(ctx context.Context, q *store.Queries, queue string) (any, error) {
		return q.ReportGroups(ctx, store.ReportGroupsParams{Queue: queue, MaxGroups: math.MaxInt32})
	}},
	{"stage_latency", func(ctx context.Context, q *store.Queries, queue string) (any, error) {
		return q.ReportStageLatency(ctx, queue)
	}},
	{"throughput_hourly", func(ctx context.Context, q *store.Queries, queue string) (any, error) {
		return q.ReportThroughputHourly(ctx, queue)
	}},
	{"stage_errors", func(ctx context.Context, q *store.Queries, queue string) (any, error) {
		return q.ReportStageErrors(ctx, queue)
	}},
	{"failures", func(ctx context.Context, q *store.Queries, queue string) (any, error) {
		return q.ReportFailures(ctx, queue)
	}},
	{"attempts_per_job", func(ctx context.Context, q *store.Queries, queue string) (any, error) {
		return q.ReportAttemptsPerJob(ctx, queue)
	}},
	{"stuck_jobs", func(ctx context.Context, q *store.Queries, queue string) (any, error) {
		return q.ReportStuckJobs(ctx, queue)
	}},
	{"pipeline_lineage", func(ctx context.Context, q *store.Queries, queue string) (any, error) {
		return q.ReportPipelineLineage(ctx, queue)
	}},
	{"slowest_journeys", func(ctx context.Context, q *store.Queries, queue string) (any, error) {
		return q.ReportSlowestJourneys(ctx, queue)
	}},
	{"worker_activity", func(ctx context.Context, q *store.Queries, _ string) (any, error) {
		return q.ReportWorkerActivity(ctx)
	}},
	{"table_health", func(ctx context.Context, q *store.Queries, _ string) (any, error) {
		return q.TableHealth(ctx)
	}},
	{"periodic", func(ctx context.Context, q *store.Queries, queue string) (any, error) {
		return q.ReportPeriodic(ctx, queue)
	}},
}

func reportNames() string {
	var names []string
	for _, r := range reports {
		names = append(names, r.name)
	}
	return strings.Join(names, ", ")
}

// reportCmd prints the reporting views: all of them, or the one named.
func reportCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newCommand("report", "baton report [NAME] [--format table|json|csv] [--queue Q] [--tag T] [--since D] [--database-url URL]   (NAME: "+reportNames()+")")
	format := fs.String("format", "table", "table, json or csv")
	queue := fs.String("queue", "", "only this queue (for pipeline_lineage: journeys through it)")
	tag := fs.String("tag", "", "only the jobs with this tag (for pipeline_lineage: journeys whose first job has it)")
	since := fs.String("since", "", "window start: a duration back from now (6h, 30m) or an RFC 3339 time; default per report")
	dbURL := fs.String("database-url", os.Getenv("BATON_REPORTS_DATABASE_URL"),
		"where the reports read, for example a hot standby (env BATON_REPORTS_DATABASE_URL; default DATABASE_URL). "+
			"A password here shows in ps: use the env, or a passfile (?passfile=PATH)")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	fs.Visit(func(f *flag.Flag) {
		if u, err := url.Parse(*dbURL); f.Name == "database-url" && err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok {
				logger().Warn("--database-url holds a password, which every local user can read in ps: set BATON_REPORTS_DATABASE_URL instead, or keep the password in a passfile (?passfile=PATH)")
			}
		}
	})
	chosen := reports
	switch {
	case len(pos) > 1:
		return usagef("report: one report NAME at most (%s)", reportNames())
	case len(pos) == 1:
		i := slices.IndexFunc(reports, func(r report) bool { return r.name == pos[0] })
		if i < 0 {
			return usagef("report: unknown report %q (reports: %s)", pos[0], reportNames())
		}
		chosen = reports[i : i+1]
	}
	switch {
	case *format != "table" && *format != "json" && *format != "csv":
		return usagef("report: --format must be table, json or csv")
	case *format == "csv" && len(chosen) > 1:
		return usagef("report: --format csv prints one report: name it (%s)", reportNames())
	case *queue != "" && !store.ValidQueueName(*queue):
		return usagef("report: --queue: %s", store.QueueNameRule)
	case *tag != "" && !store.ValidTag(*tag):
		return usagef("report: --tag: a tag is 1 to %d characters without control characters", store.MaxTagLength)
	}
	from, err := parseSince(*since)
	if err != nil {
		return err
	}

	// The views only read, so a read-only hot standby serves them as well
	// as the primary, and heavy reports then never load the primary.
	pool, err := connect(ctx, cmp.Or(*dbURL, databaseURL()), "baton-report", 2, nil)
	if err != nil {
		return err
	}
	defer pool.Close()
	results := make([]any, len(chosen))
	err = store.WithTx(ctx, pool, func(q *store.Queries) error {
		if !from.IsZero() {
			if err := q.ReportSince(ctx, from.Format(time.RFC3339Nano)); err != nil {
				return err
			}
		}
		if *tag != "" {
			if err := q.ReportTag(ctx, *tag); err != nil {
				return err
			}
		}
		for i, r := range chosen {
			if results[i], err = r.rows(ctx, q, *queue); err != nil {
				return fmt.Errorf("reading %s: %w", r.name, err)
			}
		}
		return nil
	})
	if err != nil {
		return store.MapError(err)
	}

	switch *format {
	case "json":
		out := map[string]any{}
		for i, r := range chosen {
			// No rows print as [], never null: the JSON is a contract (docs/reports.md).
			if v := reflect.ValueOf(results[i]); v.Kind() == reflect.Slice && v.IsNil() {
				results[i] = reflect.MakeSlice(v.Type(), 0, 0).Interface()
			}
			out[r.name] = results[i]
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if len(chosen) == 1 {
			return enc.Encode(results[0])
		}
		return enc.Encode(out)
	case "csv":
		w := csv.NewWriter(stdout)
		header, cells := table(results[0], false)
		_ = w.Write(header)
		_ = w.WriteAll(cells)
		return w.Error()
	}
	for i, r := range chosen {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stdout, "%s\n", r.name)
		header, cells := table(results[i], true)
		if len(cells) == 0 {
			fmt.Fprintln(stdout, "  (no rows)")
			continue
		}
		more := 0
		if len(chosen) > 1 && len(cells) > overviewRows {
			// The overview of every report stays readable; naming a report prints it all.
			cells, more = cells[:overviewRows], len(cells)-overviewRows
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(header, "\t"))
		for _, row := range cells {
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if more > 0 {
			fmt.Fprintf(stdout, "  … %d more rows: baton report %s\n", more, r.name)
		}
	}
	return nil
}

// overviewRows caps each report in the all-reports table.
const overviewRows = 20

// parseSince reads --since: empty (each view's default window), a duration
// back from now, or an RFC 3339 time.
func parseSince(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		// Checked in UTC, as every accepted time: 9999-12-31T23:59:59-01:00
		// is the year 10000.
		if u := t.UTC(); u.Before(store.MinRunAt) || u.After(store.MaxTime) {
			return time.Time{}, usagef("report: --since %s is %s in UTC; it must be between 2000 and 9999", s, u.Format(time.RFC3339))
		}
		return t, nil
	}
	return time.Time{}, usagef("report: --since must be a positive duration (6h) or an RFC 3339 time, not %q", s)
}

// table turns a slice of sqlc row structs into a header (their json names)
// and cells. For terminals (pretty), long text is cut and NULL shows as "-".
func table(rows any, pretty bool) (header []string, cells [][]string) {
	v := reflect.ValueOf(rows)
	t := v.Type().Elem()
	for i := range t.NumField() {
		header = append(header, strings.Split(t.Field(i).Tag.Get("json"), ",")[0])
	}
	for i := range v.Len() {
		var row []string
		for j := range t.NumField() {
			row = append(row, cell(v.Index(i).Field(j), pretty))
		}
		cells = append(cells, row)
	}
	return header, cells
}

func cell(v reflect.Value, pretty bool) string {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			if pretty {
				return "-"
			}
			return ""
		}
		v = v.Elem()
	}
	switch x := v.Interface().(type) {
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case time.Duration:
		return x.Round(time.Millisecond).String()
	case float64:
		return strconv.FormatFloat(x, 'f', 3, 64)
	case json.RawMessage:
		return string(x)
	case string:
		if pretty {
			x = strings.Join(strings.Fields(x), " ")
			if r := []rune(x); len(r) > 60 {
				x = string(r[:59]) + "…"
			}
		}
		return x
	}
	return fmt.Sprint(v.Interface())
}
