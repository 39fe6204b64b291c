package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/baton-run/baton/api"
	"github.com/baton-run/baton/internal/store"
)

const queueUsage = "queue: usage: baton queue list [--format table|json] | pause QUEUE [--create] | resume QUEUE [--create] | set QUEUE [--retain-succeeded D] [--retain-dead D] [--retain-canceled D] [--global-concurrency N] [--max-backlog N] [--rate-limit R] | weight QUEUE GROUP N|default"

// queueCmd lists queues, pauses and resumes them, and sets their retention:
// what the API's /v1/queues routes do.
func queueCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usagef("%s", queueUsage)
	}
	sub := args[0]
	if sub == "-h" || sub == "--help" || sub == "help" {
		return helpShown{strings.TrimPrefix(queueUsage, "queue: ") + "\n"}
	}
	fs := newCommand("queue "+sub, strings.TrimPrefix(queueUsage, "queue: usage: "))
	var retain struct{ succeeded, dead, canceled, limit, backlog, rate string }
	var format string
	var create bool
	switch sub {
	case "list":
		fs.StringVar(&format, "format", "table", "table or json (the queues as GET /v1/queues shows them)")
	case "pause", "resume":
		fs.BoolVar(&create, "create", false, "make the queue if it does not exist (to pause it before its first job)")
	}
	if sub == "set" {
		fs.StringVar(&retain.succeeded, "retain-succeeded", "", "keep succeeded jobs this long, forever, or default")
		fs.StringVar(&retain.dead, "retain-dead", "", "keep dead jobs this long, forever, or default")
		fs.StringVar(&retain.canceled, "retain-canceled", "", "keep canceled jobs this long, forever, or default")
		fs.StringVar(&retain.limit, "global-concurrency", "", "run at most N of the queue's jobs at once over every replica, or default (the stages' own)")
		fs.StringVar(&retain.backlog, "max-backlog", "", "refuse submits that would leave more than N jobs waiting, or none")
		fs.StringVar(&retain.rate, "rate-limit", "", "claim at most N of the queue's jobs per second (N/s) or minute (N/m) over every replica, or default (the stages' own)")
	}
	pos, err := fs.parse(args[1:])
	if sub == "weight" && len(args) == 4 && strings.HasPrefix(args[3], "-") && args[3] != "-h" && args[3] != "--help" {
		pos, err = args[1:], nil // a negative weight, refused below: not a flag
	}
	if err != nil {
		return err
	}
	switch {
	case sub == "list" && len(pos) == 0:
		if format != "table" && format != "json" {
			return usagef("queue list: --format %q: want table or json", format)
		}
	case (sub == "pause" || sub == "resume" || sub == "set") && len(pos) == 1:
		if err := store.ValidateQueueName(pos[0]); err != nil {
			return usagef("queue %s: %v", sub, err)
		}
	case sub == "weight" && len(pos) == 3:
		if err := store.ValidateQueueName(pos[0]); err != nil {
			return usagef("queue %s: %v", sub, err)
		}
	default:
		return usagef("%s", queueUsage)
	}
	p := store.QueueSetParams{}
	if sub == "set" {
		p.Name = pos[0]
		for _, f := range []struct {
			name, value string
			set         *bool
			ms          **int64
		}{
			{"retain-succeeded", retain.succeeded, &p.SetSucceeded, &p.SucceededMs},
			{"retain-dead", retain.dead, &p.SetDead, &p.DeadMs},
			{"retain-canceled", retain.canceled, &p.SetCanceled, &p.CanceledMs},
		} {
			if f.value == "" {
				continue
			}
			*f.set = true
			if f.value == "default" {
				continue
			}
			d, err := store.ParseRetention(f.value)
			if err != nil {
				return usagef("queue set: --%s %q: want a duration such as 48h, forever, or default", f.name, f.value)
			}
			ms := store.RetentionMs(d)
			*f.ms = &ms
		}
		for _, f := range []struct {
			name, value, unset string
			most               int64
			set                *bool
			limit              **int32
		}{
			{"global-concurrency", retain.limit, "default", store.MaxGlobalConcurrency, &p.SetGlobalConcurrency, &p.GlobalConcurrency},
			{"max-backlog", retain.backlog, "none", math.MaxInt32, &p.SetMaxBacklog, &p.MaxBacklog},
		} {
			if f.value == "" {
				continue
			}
			*f.set = true
			if f.value == f.unset {
				continue
			}
			n, err := strconv.ParseInt(f.value, 10, 32)
			if err != nil || n < 1 || n > f.most {
				return usagef("queue set: --%s %q: want 1 to %d, or %s", f.name, f.value, f.most, f.unset)
			}
			limit := int32(n)
			*f.limit = &limit
		}
		if retain.rate != "" {
			p.SetRate = true
			if retain.rate != "default" {
				rate, err := store.ParseRate(retain.rate)
				if err != nil {
					return usagef("queue set: --rate-limit %q: %s, or default", retain.rate, store.RateRule)
				}
				count, period := rate.Count, rate.PeriodMs()
				p.RateCount, p.RatePeriodMs = &count, &period
			}
		}
		if !p.SetSucceeded && !p.SetDead && !p.SetCanceled && !p.SetGlobalConcurrency && !p.SetMaxBacklog && !p.SetRate {
			return usagef("queue set: nothing to set (give --retain-succeeded, --retain-dead, --retain-canceled, --global-concurrency, --max-backlog or --rate-limit)")
		}
	}
	w := store.QueueGroupWeightParams{}
	if sub == "weight" {
		w.Queue, w.GroupKey = pos[0], pos[1]
		if err := store.ValidateGroup(w.GroupKey); err != nil || w.GroupKey == "" {
			return usagef("queue weight: group %q: a group must be 1 to %d characters without control characters", w.GroupKey, store.MaxGroupLength)
		}
		if pos[2] != "default" {
			n, err := strconv.ParseInt(pos[2], 10, 32)
			if err != nil || n < 1 || n > store.MaxGroupWeight {
				return usagef("queue weight: %q: want a weight from 1 to %d, or default (1)", pos[2], store.MaxGroupWeight)
			}
			weight := int32(n)
			w.Weight = &weight
		}
	}

	pool, err := connectCLI(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	q := store.New(pool)
	switch sub {
	case "pause", "resume":
		if create {
			if err := q.QueueCreate(ctx, pos[0]); err != nil {
				return store.MapError(err)
			}
		}
		r, err := q.QueuePause(ctx, store.QueuePauseParams{Name: pos[0], Paused: sub == "pause"})
		if err = store.MapError(err); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("queue %q %w (a queue exists once a job is submitted to it or a worker works it; --create makes it)", pos[0], store.ErrNotFound)
		} else if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "queue %s is %s\n", r.Name, map[bool]string{true: "paused", false: "active"}[r.Paused])
	case "set":
		r, err := q.QueueSet(ctx, p)
		if err != nil {
			return store.MapError(err)
		}
		limit := "(its stages' own)"
		if r.GlobalConcurrency != nil {
			limit = strconv.Itoa(int(*r.GlobalConcurrency))
		}
		backlog := "none"
		if r.MaxBacklog != nil {
			backlog = strconv.Itoa(int(*r.MaxBacklog))
		}
		rate := "(its stages' own)"
		if r.RateCount != nil && r.RatePeriodMs != nil {
			rate = store.RateOf(*r.RateCount, *r.RatePeriodMs).String()
		}
		fmt.Fprintf(stdout, "queue %s keeps succeeded jobs %s, dead jobs %s, canceled jobs %s; global concurrency %s; max backlog %s; rate limit %s\n", r.Name,
			retentionText(r.RetainSucceededMs), retentionText(r.RetainDeadMs), retentionText(r.RetainCanceledMs), limit, backlog, rate)
	case "weight":
		weight, err := q.QueueGroupWeight(ctx, w)
		if err != nil {
			return store.MapError(err)
		}
		fmt.Fprintf(stdout, "group %s of queue %s has weight %d in fair shares\n", w.GroupKey, w.Queue, weight)
	case "list":
		rows, err := q.QueueSummary(ctx, store.QueueSummaryParams{MaxQueues: math.MaxInt32})
		if err != nil {
			return store.MapError(err)
		}
		if format == "json" {
			views := make([]api.QueueView, len(rows))
			for i, r := range rows {
				views[i] = api.QueueViewOf(r)
			}
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(views)
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "QUEUE\tSTATE\tWAITING\tRUNNING\tSUCCEEDED\tDEAD\tCANCELED\tKEEP SUCCEEDED\tKEEP DEAD\tKEEP CANCELED")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", r.Queue, map[bool]string{true: "paused", false: "active"}[r.Paused],
				r.Scheduled+r.Available+r.Retrying, r.Running, r.Succeeded, r.Dead, r.Canceled,
				retentionText(r.RetainSucceededMs), retentionText(r.RetainDeadMs), retentionText(r.RetainCanceledMs))
		}
		return tw.Flush()
	}
	return nil
}

// retentionText is a stored retention in words: the default, forever, or a
// duration.
func retentionText(ms *int64) string {
	if s := store.FormatRetention(ms); s != nil {
		return *s
	}
	return "(default)"
}
