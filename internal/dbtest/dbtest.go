// Package dbtest gives each test its own Postgres database, cloned from a
// template that holds Baton's migrated schema. The server is the one at
// TEST_DATABASE_URL, else the local 127.0.0.1:5432, else (built with
// -tags containers) a testcontainers Postgres when a Docker engine answers.
// Under CI=true a missing server fails the test instead of skipping it.
package dbtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/internal/testenv"
	"github.com/baton-run/baton/migrations"
)

const localURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// startContainer is set by containers.go when built with -tags containers.
var startContainer func(ctx context.Context) (string, error)

var server struct {
	once     sync.Once
	url      string // the maintenance database of the server
	template string
	err      error
}

// New returns a pool on a fresh, migrated database for t, dropped when t ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, _ := NewWithURL(t)
	return pool
}

// NewWithURL is New that also returns the database's URL, for tests that
// start processes of their own.
func NewWithURL(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, u, cleanup, err := Open(ctx)
	if err != nil {
		testenv.Missing(t, "no test database: %v", err)
	}
	t.Cleanup(cleanup)
	return pool, u
}

// LoginAs lets an existing role log in, with a password of its own (a
// server that does not trust loopback, such as pg_virtualenv's, asks for
// one), and returns databaseURL as that role.
func LoginAs(t testing.TB, pool *pgxpool.Pool, databaseURL, role string) string {
	t.Helper()
	password := randomHex(16)
	_, err := pool.Exec(context.Background(), fmt.Sprintf("ALTER ROLE %s LOGIN PASSWORD '%s'", pgx.Identifier{role}.Sanitize(), password))
	if err != nil {
		t.Fatalf("letting %s log in: %v", role, err)
	}
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatalf("parsing %s: %v", databaseURL, err)
	}
	u.User = url.UserPassword(role, password)
	return u.String()
}

// Open creates a fresh migrated database and returns a pool on it, its URL,
// and a function that closes the pool and drops the database. Examples use
// it directly; tests use New.
func Open(ctx context.Context) (*pgxpool.Pool, string, func(), error) {
	server.once.Do(func() { server.url, server.template, server.err = prepare(ctx) })
	if server.err != nil {
		return nil, "", nil, server.err
	}
	// The creation time in the name lets later runs drop what a killed
	// process (a fuzz worker, a timed-out test) left behind.
	name := fmt.Sprintf("baton_t_%d_%s", time.Now().Unix(), randomHex(6))
	admin, err := pgx.Connect(ctx, server.url)
	if err != nil {
		return nil, "", nil, err
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, server.template)); err != nil {
		return nil, "", nil, fmt.Errorf("creating test database: %w", err)
	}
	u := withDatabase(server.url, name)
	pool, err := store.Connect(ctx, store.ConnectConfig{URL: u, AppName: "baton-test", MaxConns: 8})
	if err != nil {
		return nil, "", nil, err
	}
	cleanup := func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, server.url); err == nil {
			_, _ = conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name))
			conn.Close(ctx)
		}
	}
	return pool, u, cleanup, nil
}

// prepare finds the server and builds the template once per schema version;
// an advisory lock keeps parallel test processes from building it twice.
func prepare(ctx context.Context) (string, string, error) {
	base, err := serverURL(ctx)
	if err != nil {
		return "", "", err
	}
	template := "baton_tmpl_" + migrationsHash()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(727274)"); err != nil {
		return "", "", err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(727274)") //nolint:errcheck
	var ready *bool
	err = conn.QueryRow(ctx, "SELECT datistemplate FROM pg_database WHERE datname = $1", template).Scan(&ready)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", "", err
	}
	dropStale(ctx, conn)
	dropUnusedTemplates(ctx, conn, `baton\_tmpl\_%`, template, time.Now())
	if ready != nil && *ready {
		return base, template, markUsed(ctx, conn, template, time.Now())
	}
	if ready != nil { // a build that died half-way
		if _, err := conn.Exec(ctx, "DROP DATABASE "+template+" WITH (FORCE)"); err != nil {
			return "", "", err
		}
	}
	if err := store.MigrateUp(ctx, withDatabase(base, template)); err != nil {
		return "", "", fmt.Errorf("migrating template: %w", err)
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+template+" WITH IS_TEMPLATE true"); err != nil {
		return "", "", err
	}
	return base, template, markUsed(ctx, conn, template, time.Now())
}

// Each schema version has its own template, so a developer's server would
// keep one for every version ever tested. A template records when a test
// run last used it, and one unused for templateIdle is dropped.
const (
	templateIdle    = 24 * time.Hour
	templateComment = "baton test template, last used at unix time %d"
)

func markUsed(ctx context.Context, conn *pgx.Conn, template string, now time.Time) error {
	_, err := conn.Exec(ctx, fmt.Sprintf("COMMENT ON DATABASE %s IS '%s'", template, fmt.Sprintf(templateComment, now.Unix())))
	return err
}

// dropUnusedTemplates drops the other schema versions' templates (the
// databases named LIKE pattern, but keep) that no run has used for
// templateIdle. One with no record (made before templates
// kept one) is given one now, and so goes a day later: a run still using it
// is not cut short.
func dropUnusedTemplates(ctx context.Context, conn *pgx.Conn, pattern, keep string, now time.Time) {
	rows, err := conn.Query(ctx, `SELECT datname, coalesce(shobj_description(oid, 'pg_database'), '')
		FROM pg_database WHERE datistemplate AND datname LIKE $1 AND datname <> $2`, pattern, keep)
	if err != nil {
		return
	}
	type tmpl struct{ name, comment string }
	all, _ := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tmpl, error) {
		var t tmpl
		return t, r.Scan(&t.name, &t.comment)
	})
	for _, t := range all {
		name := pgx.Identifier{t.name}.Sanitize()
		var used int64
		if _, err := fmt.Sscanf(t.comment, templateComment, &used); err != nil {
			_ = markUsed(ctx, conn, name, now)
			continue
		}
		if now.Sub(time.Unix(used, 0)) > templateIdle {
			_, _ = conn.Exec(ctx, "ALTER DATABASE "+name+" WITH IS_TEMPLATE false")
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		}
	}
}

// dropStale drops test databases created over an hour ago.
func dropStale(ctx context.Context, conn *pgx.Conn) {
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE datname LIKE 'baton\\_t\\_%'")
	if err != nil {
		return
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, name := range names {
		var created int64
		if _, err := fmt.Sscanf(name, "baton_t_%d_", &created); err != nil || time.Since(time.Unix(created, 0)) > time.Hour {
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		}
	}
}

func serverURL(ctx context.Context) (string, error) {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u, nil
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(pctx, localURL)
	if err == nil {
		conn.Close(ctx)
		return localURL, nil
	}
	if startContainer != nil {
		return startContainer(ctx)
	}
	return "", fmt.Errorf("TEST_DATABASE_URL is unset and %s does not answer (%v); start Postgres or build with -tags containers", localURL, err)
}

func migrationsHash() string {
	h := sha256.New()
	files, _ := fs.Glob(migrations.FS, "*.sql")
	for _, f := range files {
		b, _ := fs.ReadFile(migrations.FS, f)
		h.Write([]byte(f))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func withDatabase(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(fmt.Sprintf("dbtest: bad URL %q: %v", raw, err))
	}
	u.Path = "/" + name
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// HoldHorizon holds a transaction with an xid open in pool's database, as an
// idle session would: vacuum can remove no row version that ends after it
// began, and index scans cannot mark their entries dead. release ends it
// (the test's cleanup does, if nothing else did).
func HoldHorizon(t testing.TB, pool *pgxpool.Pool) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatalf("holding the horizon: %v", err)
	}
	if _, err := conn.Exec(ctx, "BEGIN; SELECT txid_current()"); err != nil {
		conn.Release()
		t.Fatalf("holding the horizon: %v", err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			_, _ = conn.Exec(ctx, "ROLLBACK")
			conn.Release()
		})
	}
	t.Cleanup(release)
	return release
}
