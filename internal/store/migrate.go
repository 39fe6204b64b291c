package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5" // registers pgx5://
	"github.com/golang-migrate/migrate/v4/source"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/baton-run/baton/migrations"
)

// EnsureDatabase creates the database named in databaseURL if it does not
// exist, connecting to the server's "postgres" database to do so.
func EnsureDatabase(ctx context.Context, databaseURL string) error {
	if err := checkURL(databaseURL); err != nil {
		return err
	}
	cfg, err := ConnConfig(databaseURL)
	if err != nil {
		return err
	}
	name := cfg.Database
	if name == "" || name == "postgres" {
		return nil
	}
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connecting to create database %q: %w", name, MapError(err))
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("looking up database %q: %w", name, MapError(err))
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // created meanwhile by another process
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating database %q: %w", name, MapError(err))
	}
	return nil
}

// Migrator returns golang-migrate over the embedded migrations, creating the
// database first if needed. Close it when done.
func Migrator(ctx context.Context, databaseURL string) (*migrate.Migrate, error) {
	if err := EnsureDatabase(ctx, databaseURL); err != nil {
		return nil, err
	}
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return nil, fmt.Errorf("reading embedded migrations: %w", err)
	}
	src = lockTimeouts{src}
	u, err := migrateURL(databaseURL)
	if err != nil {
		return nil, err
	}
	m, err := migrate.NewWithSourceInstance("iofs", src, u)
	if err != nil {
		return nil, fmt.Errorf("opening migrations: %w", MapError(err))
	}
	return m, nil
}

// MigrateUp applies every migration not yet applied (Up).
func MigrateUp(ctx context.Context, databaseURL string) error {
	m, err := Migrator(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := Up(ctx, m, nil); err != nil {
		return fmt.Errorf("migrating up: %w", err)
	}
	return nil
}

// MigrationLockTimeout is how long a migration waits for each lock it takes.
// A migration that must wait for a long transaction elsewhere (a report, say)
// would hold every writer of its table queued behind it: it gives up instead,
// rolls back, and Up tries it again.
const MigrationLockTimeout = time.Second

// lockTimeouts gives every migration MigrationLockTimeout: a migration file
// runs as one implicit transaction (one simple-protocol query), where SET
// LOCAL lasts until its end. (Set for the connection instead, it would also
// end the wait for another process's migration, behind an advisory lock.)
type lockTimeouts struct{ source.Driver }

func (s lockTimeouts) ReadUp(version uint) (io.ReadCloser, string, error) {
	r, id, err := s.Driver.ReadUp(version)
	return withLockTimeout(r), id, err
}

func (s lockTimeouts) ReadDown(version uint) (io.ReadCloser, string, error) {
	r, id, err := s.Driver.ReadDown(version)
	return withLockTimeout(r), id, err
}

func withLockTimeout(r io.ReadCloser) io.ReadCloser {
	if r == nil {
		return nil
	}
	set := fmt.Sprintf("SET LOCAL lock_timeout = '%dms';\n", MigrationLockTimeout.Milliseconds())
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(strings.NewReader(set), r), r}
}

// Up applies every migration not yet applied, one at a time. A migration
// that gave up waiting for a lock (MigrationLockTimeout) rolled back whole,
// so the schema is still at the version before it: Up marks that version and
// tries again, waiting longer each time, up to migrationTries times. log (if
// not nil) hears of each retry. (One at a time: golang-migrate reads the
// migrations after the one it runs ahead, and a failure leaves those reads
// blocked for good.)
func Up(ctx context.Context, m *migrate.Migrate, log *slog.Logger) error {
	wait, tries := time.Second, 0
	for {
		err := m.Steps(1)
		switch {
		case err == nil:
			wait, tries = time.Second, 0
			continue
		case errors.Is(err, os.ErrNotExist), errors.Is(err, migrate.ErrNoChange):
			return nil // none left
		}
		var dbErr database.Error
		var pgErr *pgconn.PgError
		if tries++; tries == migrationTries || !errors.As(err, &dbErr) || !errors.As(dbErr.OrigErr, &pgErr) || pgErr.Code != "55P03" {
			return err
		}
		v, _, verr := m.Version()
		if verr != nil {
			return fmt.Errorf("%w (and reading the version: %w)", err, verr)
		}
		before := -1 // none
		versions, _ := MigrationVersions()
		for _, e := range versions {
			if e < int(v) {
				before = e
			}
		}
		if err := m.Force(before); err != nil {
			return fmt.Errorf("migration %d could not take a lock, and marking version %d failed: %w", v, before, err)
		}
		if log != nil {
			log.Warn("a migration could not take a lock in time (a long transaction holds it); it rolled back and runs again",
				"migration", v, "lock_timeout", MigrationLockTimeout, "try", tries, "retry_in", wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// migrationTries bounds Up's attempts at a migration that cannot take its
// locks: with its waits, about nine minutes, past the five a reporting
// session may keep a transaction open (worker.DefaultReaderLimits).
const migrationTries = 20

// MigrationVersions lists the versions of the migrations this binary holds,
// in order.
func MigrationVersions() ([]int, error) {
	names, err := fs.Glob(migrations.FS, "*.up.sql")
	if err != nil {
		return nil, err
	}
	var versions []int
	for _, name := range names {
		v, err := strconv.Atoi(name[:strings.IndexByte(name, '_')])
		if err != nil {
			return nil, fmt.Errorf("embedded migration %s: %w", name, err)
		}
		versions = append(versions, v)
	}
	slices.Sort(versions)
	return versions, nil
}

// migrateURL turns a postgres:// URL into the pgx5:// form golang-migrate's
// pgx driver requires, keeping Baton's version table apart from the user's.
func migrateURL(databaseURL string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("%w: database URL must look like postgres://user@host:port/db", ErrInvalid)
	}
	u.Scheme = "pgx5"
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k) // the pool's, which the server would refuse
		}
	}
	q.Set("x-migrations-table", "baton_schema_migrations")
	u.RawQuery = q.Encode()
	return u.String(), nil
}
