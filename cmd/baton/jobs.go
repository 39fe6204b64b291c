package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/baton-run/baton/internal/spans"
	"github.com/baton-run/baton/internal/store"
)

func submitCmd(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := newCommand("submit", "baton submit QUEUE [JSON | -] [--delay D] [--priority N] [--max-attempts N] [--key K] [--unique-key K [--unique-for D] [--unique-states S,S]] [--tag T]... [--timeout D] [--lease D] [--group G]")
	delay := fs.Duration("delay", 0, "run no earlier than this long from now (e.g. 3s, 5m)")
	priority := fs.Int("priority", 0, "0 (first) to 100")
	maxAttempts := fs.Int("max-attempts", 0, "attempts before the job is dead (default: the stage's, else 5)")
	key := fs.String("key", "", "idempotency key: the same key and job within 24h returns the first job's id")
	uniqueKey := fs.String("unique-key", "", "while a job of the queue with this key is waiting or running, submit nothing and print its id")
	uniqueFor := fs.Duration("unique-for", 0, "with --unique-key: hold the key for periods of this length only (e.g. 1h)")
	uniqueStates := fs.String("unique-states", "", "with --unique-key: the states in which a job holds its key, comma-separated (default scheduled,available,running,retrying)")
	var tags []string
	fs.Func("tag", "a tag for the job and the jobs it hands off (repeat for more, up to 16)", func(t string) error {
		tags = append(tags, t)
		return nil
	})
	timeout := fs.Duration("timeout", 0, "the job's own handler timeout, capped by its stage's max_job_timeout (default: the stage's timeout)")
	lease := fs.Duration("lease", 0, "the job's own lease, capped by its stage's max_job_lease (default: the stage's lease)")
	group := fs.String("group", "", "the job's group (a customer, an account, a tenant), kept by the jobs it hands off")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return fs.usage()
	}
	payload := []byte("{}")
	if len(pos) == 2 {
		payload = []byte(pos[1])
		if pos[1] == "-" {
			if payload, err = io.ReadAll(io.LimitReader(stdin, 64<<20)); err != nil {
				return fmt.Errorf("submit: reading payload from stdin: %w", err)
			}
		}
	}
	if !json.Valid(payload) {
		return usagef("submit: payload is not valid JSON")
	}
	if *priority < 0 || *priority > store.MaxPriority {
		return usagef("submit: --priority %d must be between 0 and %d", *priority, store.MaxPriority)
	}
	if *maxAttempts < 0 || *maxAttempts > store.MaxMaxAttempts || *maxAttempts > math.MaxInt32 {
		return usagef("submit: --max-attempts %d must be between 1 and %d", *maxAttempts, store.MaxMaxAttempts)
	}
	if *delay < 0 || *delay > store.MaxDelay {
		return usagef("submit: --delay %s must be between 0 and %s", *delay, store.MaxDelay)
	}
	var bad error
	fs.Visit(func(f *flag.Flag) {
		if (f.Name == "timeout" && *timeout <= 0) || (f.Name == "lease" && *lease <= 0) {
			bad = usagef("submit: --%s must be a positive duration, at most %s", f.Name, store.MaxJobOverride)
		}
	})
	if bad != nil {
		return bad
	}
	// A caller that runs in a trace passes it down as TRACEPARENT (the
	// OpenTelemetry convention for processes); the submit is a producer
	// span under it, and the job's runs join it.
	tracing, err := setupTracing(ctx)
	if err != nil {
		return err
	}
	defer tracing.stop()
	traced, span := tracing.provider.Tracer("github.com/baton-run/baton/cmd/baton").Start(tracing.fromEnvironment(ctx), "send "+pos[0],
		trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(spans.Send(pos[0], 1)...))
	defer span.End()
	job := store.NewJob{
		Queue: pos[0], Payload: payload, Priority: int16(*priority), Delay: *delay, MaxAttempts: int32(*maxAttempts),
		TraceParent: store.TraceParentOf(traced), UniqueKey: *uniqueKey, UniqueFor: *uniqueFor,
		Tags: tags, Timeout: *timeout, Lease: *lease, Group: *group,
	}
	for _, st := range strings.Split(*uniqueStates, ",") {
		if st = strings.TrimSpace(st); st != "" {
			job.UniqueStates = append(job.UniqueStates, store.JobState(st))
		}
	}
	if err := job.Validate(); err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	pool, err := connectCLI(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	results, _, err := store.SubmitResults(traced, pool, *key, job)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "submit failed")
		return err
	}
	span.SetAttributes(semconv.MessagingMessageID(strconv.FormatInt(results[0].ID, 10)))
	fmt.Fprintln(stdout, results[0].ID)
	if results[0].Duplicate {
		fmt.Fprintf(os.Stderr, "baton: job %d holds unique key %q: nothing submitted\n", results[0].ID, *uniqueKey)
	}
	return nil
}

func jobID(cmd string, args []string) (int64, error) {
	c := newCommand(cmd, "baton "+cmd+" ID")
	pos, err := c.parse(args)
	if err != nil {
		return 0, err
	}
	if len(pos) != 1 {
		return 0, c.usage()
	}
	id, ok := store.ParseID(pos[0])
	if !ok {
		return 0, usagef("%s: job id must be a positive integer in plain decimal, got %q", cmd, pos[0])
	}
	return id, nil
}

// withJob reads the job id of command cmd's args, connects, and calls do.
func withJob(ctx context.Context, cmd string, args []string, do func(pool *pgxpool.Pool, id int64) error) error {
	id, err := jobID(cmd, args)
	if err != nil {
		return err
	}
	pool, err := connectCLI(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	return do(pool, id)
}

func statusCmd(ctx context.Context, args []string, stdout io.Writer) error {
	return withJob(ctx, "status", args, func(pool *pgxpool.Pool, id int64) error {
		s, err := store.Status(ctx, pool, id)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	})
}

func cancelCmd(ctx context.Context, args []string, stdout io.Writer) error {
	return changeState(ctx, "cancel", args, stdout, store.Cancel)
}

func retryCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help" {
		return retryManyCmd(ctx, args, stdout)
	}
	return changeState(ctx, "retry", args, stdout, store.Retry)
}

// retryManyCmd re-drives a queue's dead (or canceled) jobs that match its
// flags, in batches, at most --rate a second.
func retryManyCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newCommand("retry", "baton retry ID | baton retry --queue Q [--state dead|canceled] [--since D] [--error-like TEXT] [--dry-run] [--rate N/s]")
	var f store.RetryFilter
	fs.StringVar(&f.Queue, "queue", "", "the queue whose jobs to re-drive")
	state := fs.String("state", "dead", "dead or canceled")
	fs.DurationVar(&f.Since, "since", 0, "only jobs finished at most this long ago (e.g. 1h); default: any time")
	fs.StringVar(&f.ErrorLike, "error-like", "", "only jobs whose last error holds this text (any case)")
	fs.BoolVar(&f.DryRun, "dry-run", false, "count the jobs, re-drive none")
	perSecond := fs.String("rate", "", "at most this many jobs a second, as N/s (default: no limit)")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 || f.Queue == "" {
		return fs.usage()
	}
	f.State = store.JobState(*state)
	if err := f.Validate(); err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	var limit float64
	if *perSecond != "" {
		n, err := strconv.ParseFloat(strings.TrimSuffix(*perSecond, "/s"), 64)
		if err != nil || n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) {
			return usagef("retry: --rate %q: want jobs a second, such as 100/s", *perSecond)
		}
		limit = n
	}
	pool, err := connectCLI(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	counts, err := store.RetryMatching(ctx, pool, f, limit, time.Time{})
	if err != nil {
		return err
	}
	if f.DryRun {
		fmt.Fprintf(stdout, "matched %d %s jobs of %s, skipped %d (dry run: none re-driven)\n", counts.Matched, f.State, f.Queue, counts.Skipped)
		return nil
	}
	fmt.Fprintf(stdout, "matched %d %s jobs of %s, retried %d, skipped %d\n", counts.Matched, f.State, f.Queue, counts.Retried, counts.Skipped)
	return nil
}

func changeState(ctx context.Context, cmd string, args []string, stdout io.Writer,
	change func(context.Context, store.Conn, int64) error) error {
	return withJob(ctx, cmd, args, func(pool *pgxpool.Pool, id int64) error {
		if err := change(ctx, pool, id); err != nil {
			return err
		}
		s, err := store.Status(ctx, pool, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "job %d is %s\n", id, s.State)
		return nil
	})
}
