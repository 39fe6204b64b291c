package maintenance

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baton-run/baton/internal/store"
)

// Retention says how long finished jobs are kept, with their history, by
// final state: maintenance deletes them once they have been finished that
// long (Prune). A queue may override each (PATCH /v1/queues/{queue}, baton
// queue set); store.Forever keeps them. Zero fields take DefaultRetention.
type Retention struct {
	Succeeded, Dead, Canceled time.Duration
}

// DefaultRetention keeps succeeded jobs a day, and dead or canceled ones (to
// look into, or re-drive) a week.
var DefaultRetention = Retention{Succeeded: 24 * time.Hour, Dead: 7 * 24 * time.Hour, Canceled: 7 * 24 * time.Hour}

func (r Retention) orDefault() Retention {
	return Retention{
		Succeeded: cmp.Or(r.Succeeded, DefaultRetention.Succeeded),
		Dead:      cmp.Or(r.Dead, DefaultRetention.Dead),
		Canceled:  cmp.Or(r.Canceled, DefaultRetention.Canceled),
	}
}

// pruneBatch bounds the jobs one prune statement deletes (a short
// transaction, few locks), and pruneBudget the time one Prune keeps at it
// while batches come back full. A batch took about 15 ms over 1M finished
// jobs, so a Prune every 10 s keeps up with about 10,000 jobs/s finishing.
const (
	pruneBatch  = 1000
	pruneBudget = 2 * time.Second
)

// Prune deletes finished jobs, with their history, that have been finished
// longer than their queue keeps them (its overrides, else r), in batches for
// up to two seconds. Replicas prune side by side, each batch taking jobs no
// other holds (SKIP LOCKED): pruning then keeps pace with the replicas that
// finish jobs. (One replica at a time, as it was, fell behind four: the
// soak's tables grew by 190 MB every 500,000 jobs, docs/benchmarks.md.) It
// never touches a job that is running or waiting. It returns how many jobs
// it deleted, and whether it stopped with more to delete. Once ctx is done
// it starts no batch, but the batch under way runs to its end (within
// dbTimeout): a canceled transaction is ended by closing its connection,
// and its server session would hold its rows' locks a moment past the stop
// of the worker that ran it.
//
// Its batches run on one connection, taken for the whole round: a
// replica's pool is small (two connections), and a batch that queued for
// a connection behind every claim and completion pruned too slowly to keep
// up with a busy queue (the soak's tables grew by 95 MB every 500,000 jobs).
// While pruning is behind, each replica's claims and completions so share
// its other connection: what finishes jobs slows until pruning catches up.
func Prune(ctx context.Context, pool *pgxpool.Pool, r Retention) (pruned int64, more bool, err error) {
	r = r.orDefault()
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	actx, cancel := context.WithTimeout(ctx, dbTimeout)
	conn, err := pool.Acquire(actx)
	cancel()
	if err != nil {
		return 0, false, fmt.Errorf("pruning finished jobs: %w", store.MapError(err))
	}
	defer conn.Release()
	for until := time.Now().Add(pruneBudget); ; {
		if err := ctx.Err(); err != nil {
			return pruned, false, err
		}
		batch, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbTimeout)
		n, err := store.New(conn).JobPrune(batch, store.JobPruneParams{
			SucceededMs: store.RetentionMs(r.Succeeded), DeadMs: store.RetentionMs(r.Dead), CanceledMs: store.RetentionMs(r.Canceled),
			MaxJobs: pruneBatch,
		})
		cancel()
		if err != nil {
			return pruned, false, fmt.Errorf("pruning finished jobs: %w", store.MapError(err))
		}
		pruned += n
		switch {
		case n < pruneBatch:
			return pruned, false, nil
		case !time.Now().Before(until):
			return pruned, true, nil
		}
	}
}

// runPrune prunes every interval until ctx is done, and again at once while
// it is behind.
func runPrune(ctx context.Context, pool *pgxpool.Pool, interval time.Duration, r Retention, log *slog.Logger) {
	for {
		n, more, err := Prune(ctx, pool, r)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("pruning finished jobs", "error", err)
		case n > 0:
			log.Info("pruned finished jobs past their retention", "jobs", n, "behind", more)
		}
		wait := interval
		if more {
			wait = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
