// Package db is Baton's store API: connect, migrate, submit, read, list,
// cancel and retry jobs, and pause or resume queues, from Go.
//
// Every operation takes a Conn: a *pgxpool.Pool, a *pgx.Conn, a
// *pgxpool.Conn or a pgx.Tx. Given your transaction, its writes commit or
// roll back with yours: a job submitted in the transaction that creates an
// order exists exactly when the order does, and no worker sees it before.
//
// Errors are the values below, tested with errors.Is; the driver's error,
// when there is one, stays in the chain.
//
// The generated queries behind it live in internal/store; their SQL is in
// queries/, and DESIGN-level notes are in docs/design.md.
package db

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/baton-run/baton/internal/store"
)

// Conn is what every operation runs on: a pool, a connection or a
// transaction (pgx's). An operation of several statements runs them in a
// transaction of its own on a pool or a connection, and in a savepoint of
// yours on a transaction.
type Conn interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
}

// DefaultURL is the database of a local PostgreSQL that baton uses when
// DATABASE_URL is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/baton?sslmode=disable"

// The errors of this package's operations (and of worker's).
var (
	// ErrNotFound: no such job or queue (or no longer: retention).
	ErrNotFound = store.ErrNotFound
	// ErrInvalid: an argument the database cannot take (a queue name, a
	// payload that is not JSON, a limit exceeded). Running it again fails
	// again.
	ErrInvalid = store.ErrInvalid
	// ErrConflict: the job is not in a state that allows the change (a
	// cancel of a finished job, a retry of one not dead or canceled), or a
	// request with the same idempotency key is still in progress.
	ErrConflict = store.ErrConflict
	// ErrKeyReused: an idempotency key used before for other jobs. It is
	// also ErrInvalid.
	ErrKeyReused = store.ErrKeyReused
	// ErrLeaseLost: a write after a claim found the lease moved on (the
	// job was reaped and claimed again, or canceled). worker.ErrLeaseLost
	// is the same value.
	ErrLeaseLost = store.ErrLeaseLost
	// ErrQueueFull: a submit that would take a queue past its max_backlog
	// (a queue setting) was refused whole; nothing was submitted. Worth
	// trying again once the queue has drained.
	ErrQueueFull = store.ErrQueueFull
	// ErrUnavailable: the database cannot be reached, or went away during
	// the operation. Worth trying again later.
	ErrUnavailable = store.ErrUnavailable
	// ErrTransactionPooler: the URL goes through a transaction pooler
	// (PgBouncer in transaction mode) that ConnectConfig.Pooler does not
	// announce. Prepared statements would fail at random there.
	ErrTransactionPooler = store.ErrTransactionPooler
)
