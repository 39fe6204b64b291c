package maintenance

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baton-run/baton/internal/store"
)

// A claim reads the claim index from its front, and every job claimed since
// the table's last vacuum leaves an entry there that the claim must step
// over: with no vacuum, claiming from a 2M-job backlog ran at 42 % of the
// speed of a 100k one. Autovacuum may be off, throttled, or an interval
// away, so maintenance vacuums Baton's tables itself once their dead row
// versions pass vacuumShare of their rows (and vacuumFloor).
const (
	vacuumShare = 0.05
	vacuumFloor = 20_000
)

// Vacuum vacuums the Baton tables that are due (TablesToVacuum): those this
// role may vacuum and that no vacuum is working on. SKIP_LOCKED passes over
// a table another replica or autovacuum is vacuuming, so every replica may
// call it. It returns the tables it vacuumed.
func Vacuum(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	due, err := store.New(pool).TablesToVacuum(ctx, store.TablesToVacuumParams{MinDead: vacuumFloor, DeadShare: vacuumShare})
	if err != nil {
		return nil, fmt.Errorf("finding tables to vacuum: %w", store.MapError(err))
	}
	for _, table := range due {
		// VACUUM takes no parameters; the name comes from pg_class.
		if _, err := pool.Exec(ctx, "VACUUM (SKIP_LOCKED) baton."+pgx.Identifier{table}.Sanitize()); err != nil {
			return nil, fmt.Errorf("vacuuming baton.%s: %w", table, store.MapError(err))
		}
	}
	return due, nil
}

// runVacuum calls Vacuum every interval until ctx is done, apart from the
// reaper's loop: a vacuum of a large table takes seconds.
func runVacuum(ctx context.Context, pool *pgxpool.Pool, interval time.Duration, log *slog.Logger) {
	every(ctx, interval, func() {
		began := time.Now()
		tables, err := Vacuum(ctx, pool)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("vacuuming", "error", err)
		case len(tables) > 0:
			log.Debug("vacuumed", "tables", tables, "took", time.Since(began))
		}
	})
}
