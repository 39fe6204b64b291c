package maintenance

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baton-run/baton/internal/store"
)

// maintenanceBatch bounds the rows one reaper or promotion statement touches.
const maintenanceBatch = 1000

// dbTimeout bounds a maintenance statement that waits on others' locks.
const dbTimeout = 10 * time.Second

// Run runs Pass every interval until ctx is done. Each of its
// steps is a single guarded statement (SKIP LOCKED, or a delete each row of
// which one replica wins), so every replica runs them at once without a
// leader. Beside it, finished jobs past retention r are pruned (Prune, in
// retention.go: one replica at a time) every ten intervals, or at once again
// while pruning is behind, tables with many dead rows are vacuumed (Vacuum,
// in vacuum.go), and reporting sessions past limits l are ended every five
// intervals (readers.go).
func Run(ctx context.Context, pool *pgxpool.Pool, interval time.Duration, r Retention, l ReaderLimits, log *slog.Logger) {
	var loops sync.WaitGroup
	defer loops.Wait()
	loops.Go(func() { runPrune(ctx, pool, 10*interval, r, log) })
	loops.Go(func() { runVacuum(ctx, pool, interval, log) })
	loops.Go(func() { runReaderLimits(ctx, pool, 5*interval, l, log) })
	every(ctx, interval, func() { Pass(ctx, pool, log) })
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

// Pass runs one round of maintenance, a step a file: the reaper gives
// expired leases back (reaper.go), due delayed and retrying jobs become
// available (promotion.go), old idempotency keys and ended dashboard sessions
// are deleted (expired.go), and the job count deltas are folded into the
// counters (counts.go). It returns how many jobs it reaped.
func Pass(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) int {
	q := store.New(pool)
	reaped := reap(ctx, q, log)
	promote(ctx, q, log)
	pruneExpired(ctx, q, log)
	foldCounts(ctx, q, log)
	return reaped
}

// warn logs a maintenance step's error, unless shutdown caused it.
func warn(ctx context.Context, log *slog.Logger, step string, err error) {
	if err != nil && ctx.Err() == nil {
		log.Warn(step, "error", store.MapError(err))
	}
}
