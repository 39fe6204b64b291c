package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/baton-run/baton/internal/store"
)

// QueueCounts is a queue's jobs by state, from the exact counters (no rows
// are counted), and whether it is paused.
type QueueCounts struct {
	Queue                               string
	Paused                              bool
	Scheduled, Available, Running       int64
	Retrying, Succeeded, Dead, Canceled int64
	// OldestAvailable is how long the queue's oldest available job has
	// been waiting (0 when none is).
	OldestAvailable time.Duration
}

// Queues reads the counts of the named queues, or of every queue when no
// name is given, in name order. A name no queue has is left out.
func Queues(ctx context.Context, c Conn, names ...string) ([]QueueCounts, error) {
	q := store.New(c)
	var out []QueueCounts
	add := func(p store.QueueSummaryParams) (int, error) {
		rows, err := q.QueueSummary(ctx, p)
		if err != nil {
			return 0, fmt.Errorf("reading queues: %w", store.MapError(err))
		}
		for _, r := range rows {
			out = append(out, QueueCounts{
				Queue: r.Queue, Paused: r.Paused, Scheduled: r.Scheduled, Available: r.Available, Running: r.Running,
				Retrying: r.Retrying, Succeeded: r.Succeeded, Dead: r.Dead, Canceled: r.Canceled,
				OldestAvailable: time.Duration(r.OldestAvailableSeconds * float64(time.Second)),
			})
		}
		return len(rows), nil
	}
	for _, name := range names {
		if _, err := add(store.QueueSummaryParams{Only: &name, MaxQueues: 1}); err != nil {
			return nil, err
		}
	}
	if len(names) > 0 {
		return out, nil
	}
	const page = 1000
	for after := ""; ; after = out[len(out)-1].Queue {
		n, err := add(store.QueueSummaryParams{After: after, MaxQueues: page})
		if err != nil || n < page {
			return out, err
		}
	}
}

// Pause stops every replica claiming from queue, at its next poll; jobs
// already running finish. Submits still go in. ErrNotFound for a queue
// that does not exist.
func Pause(ctx context.Context, c Conn, queue string) error {
	return setPaused(ctx, c, queue, true)
}

// Resume lets replicas claim from a paused queue again, at once.
func Resume(ctx context.Context, c Conn, queue string) error {
	return setPaused(ctx, c, queue, false)
}

func setPaused(ctx context.Context, c Conn, queue string, paused bool) error {
	if err := store.ValidateQueueName(queue); err != nil {
		return err
	}
	_, err := store.New(c).QueuePause(ctx, store.QueuePauseParams{Name: queue, Paused: paused})
	if err = store.MapError(err); errors.Is(err, ErrNotFound) {
		return fmt.Errorf("queue %q %w", queue, ErrNotFound)
	}
	return err
}
