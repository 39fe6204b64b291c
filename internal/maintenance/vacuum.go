package maintenance

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baton-run/baton/internal/store"
)

// Every claim and completion leaves a dead row version and its index
// entries. Autovacuum may be off, throttled, or an interval away, so
// maintenance vacuums Baton's tables itself once their dead row versions
// pass vacuumShare of their rows (and vacuumFloor): that bounds the tables'
// size, and the index entries the check below a claim floor reads. (It was
// first for the claims: with no vacuum, claiming from a 2M-job backlog ran
// at 42 % of the speed of a 100k one, stepping over the entries of every
// job claimed since. Claims start at their floor now, and a 2M burn-down
// ran as fast without vacuum: docs/benchmarks.md.)
const (
	vacuumShare = 0.05
	vacuumFloor = 20_000
)

// maxVacuumWait is the longest a table waits for its next vacuum while
// vacuums cannot clean it.
const maxVacuumWait = 30 * time.Second

// Vacuum vacuums the Baton tables that are due (TablesToVacuum): those this
// role may vacuum and that no vacuum is working on. SKIP_LOCKED passes over
// a table another replica or autovacuum is vacuuming, so every replica may
// call it. It returns the tables it vacuumed.
func Vacuum(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	return vacuumDue(ctx, pool, nil, 0, time.Now())
}

// vacuumWait spaces the vacuums of a table that its last vacuum left due.
type vacuumWait struct {
	until time.Time
	wait  time.Duration
	since int64 // the next transaction ID when that vacuum began
}

// vacuumDue is Vacuum, passing over the tables that wait (waits, if not
// nil). A table still due right after its vacuum kept its dead rows: a
// transaction somewhere holds back the horizon (an idle session, a long
// report, a standby's feedback), and vacuuming it again at once removes
// nothing. Under a held transaction maintenance vacuumed baton.jobs every
// second, each vacuum reading the whole table for nothing (a quarter of a
// core in the pressure run's idle-in-tx phase). Such a table waits until
// the horizon passes the transactions that were running when that vacuum
// began (every row it had to leave can go then), or an interval and twice
// as long after each vacuum that leaves it due, up to maxVacuumWait, if
// that comes first (sessions of other databases and other kinds of holders
// may make VacuumHorizon older than the one the vacuum uses). Waiting out
// the doubled wait alone, the first vacuum after a 10-minute hold began up
// to 30 s after its release.
func vacuumDue(ctx context.Context, pool *pgxpool.Pool, waits map[string]vacuumWait, interval time.Duration, now time.Time) ([]string, error) {
	q := store.New(pool)
	p := store.TablesToVacuumParams{MinDead: vacuumFloor, DeadShare: vacuumShare}
	due, err := q.TablesToVacuum(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("finding tables to vacuum: %w", store.MapError(err))
	}
	if len(due) == 0 {
		return nil, nil
	}
	var h store.VacuumHorizonRow
	if waits != nil {
		if h, err = q.VacuumHorizon(ctx); err != nil {
			return nil, fmt.Errorf("reading the vacuum horizon: %w", store.MapError(err))
		}
	}
	var vacuumed []string
	for _, table := range due {
		if w := waits[table]; now.Before(w.until) && h.Horizon < w.since { // no wait: until is zero
			continue
		}
		// VACUUM takes no parameters; the name comes from pg_class. One
		// process, as autovacuum's: parallel index workers (started per
		// vacuum) took cores from the claims and completions beside it, and
		// a burn-down ran faster without them (docs/benchmarks.md).
		if _, err := pool.Exec(ctx, "VACUUM (SKIP_LOCKED, PARALLEL 0) baton."+pgx.Identifier{table}.Sanitize()); err != nil {
			return vacuumed, fmt.Errorf("vacuuming baton.%s: %w", table, store.MapError(err))
		}
		vacuumed = append(vacuumed, table)
	}
	if waits == nil || len(vacuumed) == 0 {
		return vacuumed, nil
	}
	// A vacuum reports the dead rows it could not remove as the table's.
	still, err := q.TablesToVacuum(ctx, p)
	if err != nil {
		return vacuumed, fmt.Errorf("finding tables to vacuum: %w", store.MapError(err))
	}
	for _, table := range vacuumed {
		w := waits[table]
		switch {
		case !slices.Contains(still, table):
			delete(waits, table)
			continue
		case h.Horizon >= w.since:
			w.wait = 0 // the horizon moved (or no wait yet): a new wait
		}
		w.wait = min(max(2*w.wait, interval), max(maxVacuumWait, interval))
		waits[table] = vacuumWait{until: now.Add(w.wait), wait: w.wait, since: h.NextXid}
	}
	return vacuumed, nil
}

// runVacuum vacuums the due tables every interval until ctx is done, apart
// from the reaper's loop: a vacuum of a large table takes seconds.
func runVacuum(ctx context.Context, pool *pgxpool.Pool, interval time.Duration, log *slog.Logger) {
	waits := map[string]vacuumWait{}
	every(ctx, interval, func() {
		began := time.Now()
		tables, err := vacuumTurn(ctx, pool, waits, interval, began, log)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("vacuuming", "error", err)
		case len(tables) > 0:
			log.Debug("vacuumed", "tables", tables, "took", time.Since(began))
		}
	})
}

// vacuumTurn is vacuumDue on the replica that takes the interval's turn
// (TakeTurn). Under load a busy table is due again within a second of its
// vacuum, so each replica that asked on its own vacuumed it each interval:
// four replicas ran 25 vacuums of baton.jobs in a 200,000-job burn-down
// where one ran 6, each reading every index of the table (4.1 s of the
// server's time against 1.5 s).
func vacuumTurn(ctx context.Context, pool *pgxpool.Pool, waits map[string]vacuumWait, interval time.Duration, now time.Time, log *slog.Logger) ([]string, error) {
	if !TakeTurn(ctx, store.New(pool), "vacuum", interval*9/10, log) {
		return nil, nil
	}
	return vacuumDue(ctx, pool, waits, interval, now)
}
