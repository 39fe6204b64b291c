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

// Run runs Pass every interval until ctx is done, on the replica that takes
// the interval's turn (TakeTurn), the reaper less often while it is slow
// (reapWait); each of its steps is a single guarded
// statement besides (SKIP LOCKED, or a delete each row of which one replica
// wins), so replicas need no leader. Beside it, finished jobs past
// retention r are pruned (Prune, in retention.go: replicas side by side)
// every ten intervals, or at once again while pruning is behind, tables
// with many dead rows are vacuumed (Vacuum, in vacuum.go), and reporting
// sessions past limits l are ended every five intervals (readers.go).
func Run(ctx context.Context, pool *pgxpool.Pool, interval time.Duration, r Retention, l ReaderLimits, log *slog.Logger) {
	var loops sync.WaitGroup
	defer loops.Wait()
	loops.Go(func() { runPrune(ctx, pool, 10*interval, r, log) })
	loops.Go(func() { runVacuum(ctx, pool, interval, log) })
	loops.Go(func() { runReaderLimits(ctx, pool, 5*interval, l, log) })
	q := store.New(pool)
	var reapTook time.Duration // this replica's last reap
	every(ctx, interval, func() {
		if !TakeTurn(ctx, q, "pass", interval*9/10, log) {
			return
		}
		if TakeTurn(ctx, q, "reap", reapWait(interval, reapTook), log) {
			began := time.Now()
			reap(ctx, q, log)
			reapTook = time.Since(began)
		}
		tend(ctx, q, log)
	})
}

// maxReapWait is the longest the reaper waits for its turn when it is slow.
const maxReapWait = time.Minute

// reapWait is how long the reaper waits between turns: an interval, or
// longer if its last walk (took) was slow, so that it takes at most a
// twentieth of the time, up to maxReapWait. While a transaction holds back
// vacuum, the walk reads every job that ran since (150 ms after two minutes
// at 3,175 jobs/s, 4.5 s after ten minutes of readers holding a snapshot:
// with walks at most 10 s apart it took half a core of two); a dead
// worker's jobs are then reaped up to a minute late. Only the reaper waits:
// spacing the whole pass so kept due jobs waiting for promotion whenever a
// busy server slowed the pass.
func reapWait(interval, took time.Duration) time.Duration {
	return max(interval*9/10, min(20*took, maxReapWait))
}

// TakeTurn says whether this replica runs a maintenance step now: the first
// replica to ask once the duration every has gone by since the step last ran
// (MaintenanceTurn, migration 27). Run by every replica, the reaper's walk
// over the running jobs was repeated N times an interval, and it grows with
// the jobs N replicas hold. The pass asks every nine tenths of an interval,
// so that a lone replica, whose ticker jitters, keeps every turn. If the
// database cannot say, the step runs: each of its statements is safe on
// every replica.
func TakeTurn(ctx context.Context, q *store.Queries, step string, every time.Duration, log *slog.Logger) bool {
	qctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	taken, err := q.MaintenanceTurn(qctx, store.MaintenanceTurnParams{Step: step, EveryMs: every.Milliseconds()})
	if err != nil {
		warn(ctx, log, "taking the maintenance turn", err)
		return true
	}
	return taken
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
	tend(ctx, q, log)
	return reaped
}

// tend runs the pass's steps after the reaper.
func tend(ctx context.Context, q *store.Queries, log *slog.Logger) {
	promote(ctx, q, log)
	pruneExpired(ctx, q, log)
	foldCounts(ctx, q, log)
}

// warn logs a maintenance step's error, unless shutdown caused it.
func warn(ctx context.Context, log *slog.Logger, step string, err error) {
	if err != nil && ctx.Err() == nil {
		log.Warn(step, "error", store.MapError(err))
	}
}
