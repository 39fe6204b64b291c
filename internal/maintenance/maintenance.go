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
// the interval's turn (passTurn); each of its steps is a single guarded
// statement besides (SKIP LOCKED, or a delete each row of which one replica
// wins), so replicas need no leader. Beside it, finished jobs past
// retention r are pruned (Prune, in retention.go: one replica at a time)
// every ten intervals, or at once again while pruning is behind, tables
// with many dead rows are vacuumed (Vacuum, in vacuum.go), and reporting
// sessions past limits l are ended every five intervals (readers.go).
func Run(ctx context.Context, pool *pgxpool.Pool, interval time.Duration, r Retention, l ReaderLimits, log *slog.Logger) {
	var loops sync.WaitGroup
	defer loops.Wait()
	loops.Go(func() { runPrune(ctx, pool, 10*interval, r, log) })
	loops.Go(func() { runVacuum(ctx, pool, interval, log) })
	loops.Go(func() { runReaderLimits(ctx, pool, 5*interval, l, log) })
	var took time.Duration // this replica's last pass
	every(ctx, interval, func() {
		if passTurn(ctx, pool, interval, took, log) {
			began := time.Now()
			Pass(ctx, pool, log)
			took = time.Since(began)
		}
	})
}

// maxPassWait is the longest the pass waits for its turn when it is slow.
const maxPassWait = 10 * time.Second

// passTurn says whether this replica runs this interval's pass: the first
// replica to ask once most of an interval has gone by since the last pass
// (MaintenanceTurn, migration 27). Run by every replica, the reaper's walk
// over the running jobs was repeated N times an interval, and it grows with
// the jobs N replicas hold. Nine tenths of an interval, so that a lone
// replica, whose ticker jitters, keeps every turn. A replica whose last
// pass was slow (took) asks for it less often, so that the pass takes at
// most a twentieth of the time, up to maxPassWait between passes: while a
// transaction holds back vacuum, the reaper's walk reads every job that ran
// since (150 ms after two minutes at 3,175 jobs/s, and growing); a dead
// worker's jobs are then reaped a little later. If the database cannot
// say, the pass runs: each of its statements is safe on every replica.
func passTurn(ctx context.Context, pool *pgxpool.Pool, interval, took time.Duration, log *slog.Logger) bool {
	qctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	wait := max(interval*9/10, min(20*took, maxPassWait))
	taken, err := store.New(pool).MaintenanceTurn(qctx, store.MaintenanceTurnParams{Step: "pass", EveryMs: wait.Milliseconds()})
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
