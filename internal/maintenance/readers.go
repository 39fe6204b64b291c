package maintenance

import (
	"cmp"
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baton-run/baton/internal/store"
)

// ReaderLimits bound the transactions of the reporting role's sessions
// (baton_reader, docs/reader-role.sql). A reader's open transaction holds
// back vacuum, and its locks queue every writer behind the next migration;
// PostgreSQL 15 lets the session lift its own timeouts, so maintenance ends
// a session past these limits. Zero fields take DefaultReaderLimits.
type ReaderLimits struct {
	// IdleInTransaction ends a session idle in a transaction this long.
	IdleInTransaction time.Duration
	// Transaction ends a session whose transaction (a statement, or
	// statements one after another) has been open this long.
	Transaction time.Duration
}

// DefaultReaderLimits end a reader's session idle in a transaction for a
// minute, or in one transaction for five.
var DefaultReaderLimits = ReaderLimits{IdleInTransaction: time.Minute, Transaction: 5 * time.Minute}

func (l ReaderLimits) orDefault() ReaderLimits {
	return ReaderLimits{
		IdleInTransaction: cmp.Or(l.IdleInTransaction, DefaultReaderLimits.IdleInTransaction),
		Transaction:       cmp.Or(l.Transaction, DefaultReaderLimits.Transaction),
	}
}

// runReaderLimits ends readers' sessions past l every interval until ctx
// is done. A session it may not end is logged once.
func runReaderLimits(ctx context.Context, pool *pgxpool.Pool, interval time.Duration, l ReaderLimits, log *slog.Logger) {
	l = l.orDefault()
	warned := false
	every(ctx, interval, func() {
		qctx, cancel := context.WithTimeout(ctx, dbTimeout)
		defer cancel()
		rows, err := store.New(pool).ReaderSessionsEnd(qctx, store.ReaderSessionsEndParams{
			IdleMs: l.IdleInTransaction.Milliseconds(), TransactionMs: l.Transaction.Milliseconds(),
		})
		if err != nil {
			warn(ctx, log, "ending readers' sessions past their limits", err)
			return
		}
		for _, r := range rows {
			switch {
			case r.Ended:
				log.Warn("ended a baton_reader session that held a transaction past its limit", "pid", r.Pid, "state", r.State,
					"transaction_seconds", r.TransactionSeconds, "idle_limit", l.IdleInTransaction, "transaction_limit", l.Transaction)
			case !warned:
				warned = true
				log.Warn("a baton_reader session holds a transaction past its limit, and this role may not end it: grant it baton_reader or pg_signal_backend",
					"pid", r.Pid, "state", r.State, "transaction_seconds", r.TransactionSeconds)
			}
		}
	})
}
