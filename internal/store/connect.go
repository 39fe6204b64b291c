package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Pooler is what stands between Baton and PostgreSQL (BATON_POOLER).
type Pooler string

const (
	// NoPooler is a direct connection, or a pooler in session mode, where a
	// client keeps its server connection. The default.
	NoPooler Pooler = ""
	// TransactionPooler is PgBouncer (or alike) in transaction mode: a server
	// connection is a client's for one transaction only, so nothing may
	// outlive one. Queries then use the extended protocol's unnamed
	// statement instead of prepared ones, workers poll instead of LISTEN, and
	// migrations, which hold a session lock, need a direct URL.
	TransactionPooler Pooler = "transaction"
)

// ParsePooler reads a Pooler: "" or "none", "session", or "transaction".
func ParsePooler(s string) (Pooler, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "none", "session":
		return NoPooler, nil
	case "transaction":
		return TransactionPooler, nil
	}
	return NoPooler, fmt.Errorf("%w: pooler %q: want none, session or transaction", ErrInvalid, s)
}

// ConnectConfig says how to reach the database.
type ConnectConfig struct {
	// URL is a postgres:// connection string. Required.
	URL string
	// AppName is the application_name operators see in pg_stat_activity,
	// unless the URL sets one.
	AppName string
	// MaxConns sizes the pool, unless the URL sets pool_max_conns. 0 keeps
	// pgxpool's default.
	MaxConns int32
	// Pooler is what stands between Baton and the server. Defaults to none.
	Pooler Pooler
	// OnConnect, if set, hears of each new connection that is ready: after
	// an outage, the first says the database is back.
	OnConnect func()
}

// ConnConfig parses databaseURL for a single connection: the pool's
// parameters (pool_max_conns and the rest, which a pool's users may put
// in the URL) are left out, since the server refuses them.
func ConnConfig(databaseURL string) (*pgx.ConnConfig, error) {
	if err := checkURL(databaseURL); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("%w: parsing database URL: %w", ErrInvalid, err)
	}
	return cfg.ConnConfig, nil
}

// Connect opens a pool and checks that the database answers.
func Connect(ctx context.Context, c ConnectConfig) (*pgxpool.Pool, error) {
	if err := checkURL(c.URL); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(c.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: parsing database URL: %w", ErrInvalid, err)
	}
	if c.MaxConns > 0 && !strings.Contains(c.URL, "pool_max_conns") {
		cfg.MaxConns = c.MaxConns
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok && c.AppName != "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = c.AppName
	}
	if c.Pooler == TransactionPooler {
		// pgx prepares and caches named statements per connection; through a
		// transaction pooler the next transaction may meet another client's
		// ("prepared statement ... already exists", or one that is missing).
		cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	}
	cfg.AfterConnect = AfterConnect
	if c.OnConnect != nil {
		cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
			if err := AfterConnect(ctx, conn); err != nil {
				return err
			}
			c.OnConnect()
			return nil
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to database: %w", MapError(err))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to database: %w", MapError(err))
	}
	if c.Pooler == NoPooler {
		// An unannounced transaction pooler would fail prepared statements
		// at random: refused here, once, for every caller.
		if behind, err := behindTransactionPooler(ctx, pool.Config().ConnConfig); err != nil || behind {
			pool.Close()
			if behind {
				err = ErrTransactionPooler
			}
			return nil, err
		}
	}
	return pool, nil
}

// TransactionPooled reports whether pool was connected for a transaction
// pooler (Pooler: TransactionPooler): its statements are not prepared, and
// LISTEN cannot work through it, so a worker on it polls.
func TransactionPooled(pool *pgxpool.Pool) bool {
	return pool.Config().ConnConfig.DefaultQueryExecMode == pgx.QueryExecModeExec
}

// checkURL refuses a postgres:// URL with more than one @ before its query:
// an @ in a password that is not percent-encoded. Such a URL parses, but
// the password is cut in two, and its end shows in the errors that follow:
// "lookup ss@127.0.0.1: no such host" for a password "p@ss".
func checkURL(u string) error {
	rest, ok := strings.CutPrefix(u, "postgres://")
	if !ok {
		rest, ok = strings.CutPrefix(u, "postgresql://")
	}
	if !ok {
		return nil // a keyword/value string: no URL syntax to mistake
	}
	rest, _, _ = strings.Cut(rest, "?")
	if strings.Count(rest, "@") > 1 {
		return fmt.Errorf("%w: the database URL has more than one @: percent-encode an @ (or a / or : ) in its password or name as %%40 (%%2F, %%3A)", ErrInvalid)
	}
	return nil
}
