package worker

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baton-run/baton/db"
)

// maintenanceBatch bounds the rows one reaper or promotion statement touches.
const maintenanceBatch = 1000

// RunMaintenance runs Maintain every interval until ctx is done: the reaper
// and the promotion of due jobs are single guarded statements using SKIP
// LOCKED, so every replica runs them at once without a leader. Beside it,
// finished jobs past retention r are pruned (Prune: one replica at a time)
// every ten intervals, or at once again while pruning is behind, and tables
// with many dead rows are vacuumed (Vacuum).
func RunMaintenance(ctx context.Context, pool *pgxpool.Pool, interval time.Duration, r Retention, log *slog.Logger) {
	var loops sync.WaitGroup
	defer loops.Wait()
	loops.Go(func() { runPrune(ctx, pool, 10*interval, r, log) })
	loops.Go(func() { runVacuum(ctx, pool, interval, log) })
	every(ctx, interval, func() { Maintain(ctx, pool, log) })
}

// every calls f every interval until ctx is done.
func every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// Maintain runs one round of maintenance: expired leases go back to their
// queue (or to dead when attempts are exhausted), delayed or retrying jobs
// that are due become available, idempotency keys older than 24 hours are
// deleted, the job count deltas are folded into the counters, and ended
// dashboard sessions are deleted. It returns how many jobs it reaped.
func Maintain(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) int {
	q := db.New(pool)
	reaped := 0
	for {
		rows, err := q.JobReap(ctx, maintenanceBatch)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("reaping expired leases", "error", db.MapError(err))
			}
			break
		}
		for _, r := range rows {
			log.Warn("lease expired", "job_id", r.ID, "state", r.State)
		}
		reaped += len(rows)
		if len(rows) < maintenanceBatch {
			break
		}
	}
	for {
		n, err := q.JobPromote(ctx, maintenanceBatch)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("promoting due jobs", "error", db.MapError(err))
			}
			break
		}
		if n < maintenanceBatch {
			break
		}
	}
	if _, err := q.IdempotencyPrune(ctx); err != nil && ctx.Err() == nil {
		log.Warn("pruning idempotency keys", "error", db.MapError(err))
	}
	if _, err := q.JobCountsFold(ctx); err != nil && ctx.Err() == nil {
		log.Warn("folding job counts", "error", db.MapError(err))
	}
	if _, err := q.SessionPrune(ctx); err != nil && ctx.Err() == nil {
		log.Warn("pruning ended dashboard sessions", "error", db.MapError(err))
	}
	return reaped
}
