package dbtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Templates of other schema versions go once no run has used them for a
// day; the one in use, a recently used one and one with no record yet stay.
func TestUnusedTemplatesAreDropped(t *testing.T) {
	New(t) // the server and this version's template
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, server.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	now := time.Now()
	suffix := randomHex(4)
	create := func(name string, lastUsed time.Time) {
		t.Helper()
		for _, sql := range []string{"CREATE DATABASE " + name, "ALTER DATABASE " + name + " WITH IS_TEMPLATE true"} {
			if _, err := conn.Exec(ctx, sql); err != nil {
				t.Fatal(err)
			}
		}
		if !lastUsed.IsZero() {
			if err := markUsed(ctx, conn, name, lastUsed); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() {
			_, _ = conn.Exec(ctx, "ALTER DATABASE "+name+" WITH IS_TEMPLATE false")
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		})
	}
	// Only this test's templates are looked at: the server may hold other
	// checkouts' templates, in use.
	pattern := `baton\_tmpl\_%` + suffix
	idle, recent, unmarked := "baton_tmpl_idle"+suffix, "baton_tmpl_recent"+suffix, "baton_tmpl_unmarked"+suffix
	create(idle, now.Add(-25*time.Hour))
	create(recent, now.Add(-time.Hour))
	create(unmarked, time.Time{})

	dropUnusedTemplates(ctx, conn, pattern, server.template, now)
	exists := func(name string) bool {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	for name, want := range map[string]bool{idle: false, recent: true, unmarked: true, server.template: true} {
		if got := exists(name); got != want {
			t.Errorf("%s exists: %v, want %v", name, got, want)
		}
	}
	// The unmarked one now has a record, and goes a day later.
	dropUnusedTemplates(ctx, conn, pattern, server.template, now.Add(templateIdle+time.Minute))
	if exists(unmarked) {
		t.Errorf("%s outlived a day unused", unmarked)
	}
	if exists(recent) {
		t.Errorf("%s outlived a day unused", recent)
	}
	if !exists(server.template) {
		t.Errorf("the template in use, %s, was dropped", server.template)
	}
}
