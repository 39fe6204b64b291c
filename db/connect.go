package db

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baton-run/baton/internal/store"
)

// ConnectConfig says how to reach the database.
type ConnectConfig struct {
	// URL is a postgres:// connection string (DefaultURL for a local
	// server). Required.
	URL string
	// AppName is the application_name operators see in pg_stat_activity,
	// unless the URL sets one.
	AppName string
	// MaxConns sizes the pool, unless the URL sets pool_max_conns; 0 keeps
	// pgxpool's default. A worker needs (*worker.Pipeline).PoolSize.
	MaxConns int32
	// Pooler is what stands between Baton and the server: NoPooler (a
	// direct connection, or a session pooler; the default) or
	// TransactionPooler.
	Pooler Pooler
	// OnConnect, if set, hears of each new connection that is ready: after
	// an outage, the first says the database is back.
	OnConnect func()
}

// Pooler is what stands between Baton and PostgreSQL (BATON_POOLER).
type Pooler = store.Pooler

const (
	// NoPooler is a direct connection, or a pooler in session mode, where a
	// client keeps its server connection.
	NoPooler Pooler = ""
	// TransactionPooler is PgBouncer (or alike) in transaction mode: a
	// server connection is a client's for one transaction only. Statements
	// are then not prepared, a worker on the pool polls instead of
	// LISTEN, and migrations need a direct URL.
	TransactionPooler Pooler = "transaction"
)

// Connect opens a pool and checks that the database answers. With NoPooler
// it also checks that no transaction pooler stands in between unannounced
// (ErrTransactionPooler): three statements on two extra connections.
//
// Each connection of the pool reads timestamptz values into a time.Time
// that every reader can write: ±infinity and times outside the years
// 0000..9999 read as 0000-01-01 and 9999-12-31T23:59:59Z instead of failing
// (pgx's own codec refuses them). Your queries on the pool read them so
// too; every other value reads as pgx reads it.
func Connect(ctx context.Context, c ConnectConfig) (*pgxpool.Pool, error) {
	return store.Connect(ctx, store.ConnectConfig(c))
}

// MigrateUp creates the database named in url if it does not exist and
// applies Baton's migrations not yet applied (the embedded migrations/,
// schema baton). Replicas may run it at once: an advisory lock lets one
// migrate at a time. Through a transaction pooler, give it a direct URL.
func MigrateUp(ctx context.Context, url string) error {
	if err := store.EnsureDatabase(ctx, url); err != nil {
		return err
	}
	return store.MigrateUp(ctx, url)
}
