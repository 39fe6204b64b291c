// Package db is Baton's data layer: the sqlc-generated queries (files ending
// in .gen.go, never edited by hand; their SQL is in queries/) and the few
// operations that need more than one query, a file each:
//
//   - store.go: domain errors, the one place driver errors are mapped, WithTx
//   - connect.go, migrate.go: pools (and the PgBouncer mode), migrations
//   - limits.go: what a queue name, an id and a job may be
//   - submit.go, idempotency.go: submits, with or without an Idempotency-Key
//   - status.go: a job as users see it (its history, children), cancel, retry
//   - retention.go, times.go: pruning finished jobs; times every reader can render
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultURL is used when DATABASE_URL is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/baton?sslmode=disable"

// Domain errors. Callers test them with errors.Is; the driver error, when
// there is one, stays in the chain.
var (
	ErrNotFound    = errors.New("not found")
	ErrInvalid     = errors.New("invalid input")
	ErrConflict    = errors.New("conflict")
	ErrLeaseLost   = errors.New("lease lost")
	ErrUnavailable = errors.New("database unavailable")
	// ErrQueueFull is a submit refused whole: it would take a queue past
	// its max_backlog (baton.admit, migration 24). Worth trying again once
	// the queue has drained.
	ErrQueueFull = errors.New("queue full")
	// ErrUnreadable is a statement that failed for a value it could not
	// write out (over PostgreSQL's 1 GB limit as text, or out of memory
	// doing so) or a damaged row.
	ErrUnreadable = errors.New("a row cannot be read")
)

// MapError translates driver errors into domain errors: no rows becomes
// ErrNotFound, data errors ErrInvalid, lost connections and server shutdowns
// ErrUnavailable, values too large to write out and damaged rows
// ErrUnreadable. Other errors are returned unchanged.
func MapError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	var pgErr *pgconn.PgError
	if preparedStatementLost(err) {
		return fmt.Errorf("%w: %w (%w)", ErrUnavailable, ErrTransactionPooler, err)
	}
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "BQ001": // baton.admit: a queue's max_backlog
			return fmt.Errorf("%w: %s", ErrQueueFull, pgErr.Message)
		case pgErr.Code == "22P05", pgErr.Code == "22021": // NUL or bad encoding in text/jsonb
			return fmt.Errorf("%w: %s", ErrInvalid, pgErr.Message)
		case strings.HasPrefix(pgErr.Code, "22"), pgErr.Code == "23514": // data exception, check violation
			return fmt.Errorf("%w: %s", ErrInvalid, pgErr.Message)
		case strings.HasPrefix(pgErr.Code, "08"), strings.HasPrefix(pgErr.Code, "57P"),
			pgErr.Code == "53300", pgErr.Code == "25006":
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		case pgErr.Code == "54000", pgErr.Code == "53200", pgErr.Code == "XX001", pgErr.Code == "XX002":
			// program limit exceeded, out of memory, data or index corrupted
			return fmt.Errorf("%w: %w", ErrUnreadable, err)
		}
		return err
	}
	// Cannot connect, or the connection was lost: closed by the server or
	// on the way (io.EOF, io.ErrUnexpectedEOF), or reset (a *net.OpError).
	var connErr *pgconn.ConnectError
	var netErr *net.OpError
	if errors.As(err, &connErr) || pgconn.SafeToRetry(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.As(err, &netErr) && !netErr.Timeout() {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// ConnectionLost reports whether err came from a connection that was lost
// (ended by the server, as pg_terminate_backend does, or on the way) rather
// than from a database that cannot be reached: the pool drops such a
// connection, and another one may answer at once.
func ConnectionLost(err error) bool {
	var connErr *pgconn.ConnectError
	return errors.Is(MapError(err), ErrUnavailable) && !errors.As(err, &connErr)
}

// Refused reports whether the database refused a statement for its data or
// its rules (a constraint, a value it cannot store), as opposed to failing to
// run it (a lost connection, a shutdown, a deadlock or serialization
// failure): run again, it would be refused again.
func Refused(err error) bool {
	if errors.Is(err, ErrInvalid) { // MapError's data exceptions and check violations
		return true
	}
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && !errors.Is(MapError(err), ErrUnavailable) && !strings.HasPrefix(pgErr.Code, "40")
}

// WithTx runs fn in a transaction on db: committed when fn returns nil,
// rolled back otherwise.
func WithTx(ctx context.Context, db Beginner, fn func(q *Queries) error) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error { return fn(New(tx)) })
}
