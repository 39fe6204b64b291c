package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrTransactionPooler is the error of a pool that stands behind a
// transaction pooler without Pooler: TransactionPooler: pgx's prepared
// statements meet other clients' on shared server connections.
var ErrTransactionPooler = errors.New("DATABASE_URL goes through a transaction pooler (PgBouncer with pool_mode = transaction, or alike): " +
	"set BATON_POOLER=transaction (and BATON_MIGRATE_DATABASE_URL to a direct connection, for migrations)")

// BehindTransactionPooler tells whether cfg's connections go through a
// pooler that hands a server connection to another client after each
// transaction. It opens two connections (simple protocol, so that it works
// through such a pooler) and watches their server processes: A's, then B's
// inside a transaction that B holds open, then A's again. Directly, or
// through a session pooler, each connection keeps its own process; through
// a transaction pooler, B takes the process A just left (PgBouncer reuses
// the last one freed), or A moves to another.
func BehindTransactionPooler(ctx context.Context, cfg *pgx.ConnConfig) (bool, error) {
	cfg = cfg.Copy()
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	a, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("checking for a transaction pooler: %w", MapError(err))
	}
	defer a.Close(context.WithoutCancel(ctx))
	b, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("checking for a transaction pooler: %w", MapError(err))
	}
	defer b.Close(context.WithoutCancel(ctx))

	first, err := New(a).BackendPid(ctx)
	if err != nil {
		return false, fmt.Errorf("checking for a transaction pooler: %w", MapError(err))
	}
	tx, err := b.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("checking for a transaction pooler: %w", MapError(err))
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	held, err := New(tx).BackendPid(ctx)
	if err != nil {
		return false, fmt.Errorf("checking for a transaction pooler: %w", MapError(err))
	}
	if held == first {
		return true, nil
	}
	// A pooler with a single server connection makes A wait for B's
	// transaction: that, too, says a pooler shares it.
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	again, err := New(a).BackendPid(actx)
	switch {
	case err != nil && actx.Err() != nil && ctx.Err() == nil:
		return true, nil
	case err != nil:
		return false, fmt.Errorf("checking for a transaction pooler: %w", MapError(err))
	}
	return again != first, nil
}

// preparedStatementLost reports the errors of pgx's prepared statements
// through a transaction pooler: one prepared on another server connection
// (26000, "does not exist") or another client's of the same name (42P05).
// The statement did not run.
func preparedStatementLost(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "26000" || pgErr.Code == "42P05")
}
