package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrTransactionPooler is the error of a pool that stands behind a
// transaction pooler without Pooler: TransactionPooler: pgx's prepared
// statements meet other clients' on shared server connections.
var ErrTransactionPooler = errors.New("DATABASE_URL goes through a transaction pooler (PgBouncer with pool_mode = transaction, or alike): " +
	"set BATON_POOLER=transaction (and BATON_MIGRATE_DATABASE_URL to a direct connection, for migrations)")

// behindTransactionPooler tells whether cfg's connections go through a
// pooler that hands a server connection to another client after each
// transaction. It opens two connections (simple protocol, so that it works
// through such a pooler) and watches their server processes: A's, then B's,
// then A's again, one statement each. Directly, or through a session pooler,
// each connection keeps its own process; through a transaction pooler, B
// takes the process A just left (PgBouncer reuses the last one freed), or A
// moves to another. It never waits on anything but the statements: a slow
// server cannot make it see a pooler.
func behindTransactionPooler(ctx context.Context, cfg *pgx.ConnConfig) (bool, error) {
	cfg = cfg.Copy()
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	var pids [3]int32
	conns := [2]*pgx.Conn{}
	for i := range conns {
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return false, fmt.Errorf("checking for a transaction pooler: %w", MapError(err))
		}
		defer c.Close(context.WithoutCancel(ctx))
		conns[i] = c
	}
	for i, c := range []*pgx.Conn{conns[0], conns[1], conns[0]} {
		pid, err := New(c).BackendPid(ctx)
		if err != nil {
			return false, fmt.Errorf("checking for a transaction pooler: %w", MapError(err))
		}
		pids[i] = pid
	}
	return pids[1] == pids[0] || pids[2] != pids[0], nil
}

// preparedStatementLost reports the errors of pgx's prepared statements
// through a transaction pooler: one prepared on another server connection
// (26000, "does not exist") or another client's of the same name (42P05).
// The statement did not run.
func preparedStatementLost(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "26000" || pgErr.Code == "42P05")
}
