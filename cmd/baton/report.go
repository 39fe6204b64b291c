package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/baton-run/baton/db"
)

// reportCmd prints the SQL reports. Only queue_summary exists so far.
func reportCmd(ctx context.Context, args []string, stdout io.Writer) error {
	pos, err := parseFlags(flag.NewFlagSet("report", flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	if len(pos) > 1 || len(pos) == 1 && pos[0] != "queue_summary" {
		return usagef("report: usage: baton report [queue_summary]")
	}
	pool, err := connectCLI(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	rows, err := db.New(pool).QueueSummary(ctx)
	if err != nil {
		return fmt.Errorf("reading queue_summary: %w", db.MapError(err))
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "queue\tscheduled\tavailable\trunning\tretrying\tsucceeded\tdead\tcanceled\toldest_available_age\t")
	for _, r := range rows {
		age := time.Duration(r.OldestAvailableSeconds * float64(time.Second)).Round(time.Millisecond)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n",
			r.Queue, r.Scheduled, r.Available, r.Running, r.Retrying, r.Succeeded, r.Dead, r.Canceled, age)
	}
	return tw.Flush()
}
