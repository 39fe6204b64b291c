package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/golang-migrate/migrate/v4"

	"github.com/baton-run/baton/internal/store"
)

func migrateCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newCommand("migrate", "baton migrate up | down N | down --all | force N | version | status")
	all := fs.Bool("all", false, "with down: remove every migration, and with it Baton's schema and every job")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return fs.usage()
	}
	n := 0 // down: steps; force: the version
	switch {
	case pos[0] == "status" && len(pos) == 1 && !*all:
		return migrateStatus(ctx, stdout)
	case (pos[0] == "up" || pos[0] == "version") && len(pos) == 1 && !*all:
	case pos[0] == "down" && len(pos) == 1 && *all:
	case pos[0] == "down" && len(pos) == 1:
		return usagef("migrate down: say how many migrations to undo (down N), or --all to remove Baton's schema and every job")
	case (pos[0] == "down" || pos[0] == "force") && len(pos) == 2 && !*all:
		if n, err = strconv.Atoi(pos[1]); err != nil || n < 1 {
			return usagef("migrate %s: N must be a positive number, got %q", pos[0], pos[1])
		}
	default:
		return fs.usage()
	}
	target, err := migrationURL()
	if err != nil {
		return err
	}
	m, err := store.Migrator(ctx, target)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := checkMigrateTarget(m, pos[0], n); err != nil {
		return err
	}
	switch pos[0] {
	case "up":
		err = store.Up(ctx, m, logger())
	case "down":
		if *all {
			err = m.Down()
		} else {
			err = m.Steps(-n)
		}
	case "force":
		// Marks version n clean without running anything: after a failed
		// migration was finished or undone by hand.
		err = m.Force(n)
	}
	if err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate %s: %w", pos[0], err)
	}
	v, dirty, err := m.Version()
	switch {
	case errors.Is(err, migrate.ErrNilVersion):
		fmt.Fprintln(stdout, "version: none")
	case err != nil:
		return fmt.Errorf("migrate version: %w", err)
	case dirty:
		fmt.Fprintf(stdout, "version: %d (dirty: migration %d failed half-way; finish or undo it by hand, then baton migrate force N with the version the schema is at)\n", v, v)
	default:
		fmt.Fprintf(stdout, "version: %d\n", v)
	}
	return nil
}

// checkMigrateTarget refuses, before anything changes, a down N past what is
// applied (golang-migrate would undo everything, then fail: the schema and
// every job gone, as down --all, which must be asked for by name) and a force
// to a version this binary does not have (which breaks up and down after).
func checkMigrateTarget(m *migrate.Migrate, verb string, n int) error {
	versions, err := store.MigrationVersions()
	if err != nil {
		return err
	}
	switch verb {
	case "force":
		if !slices.Contains(versions, n) {
			return usagef("migrate force %d: this binary has no migration %d (it has 1 to %d)", n, n, versions[len(versions)-1])
		}
	case "down":
		if n == 0 { // --all
			return nil
		}
		v, _, err := m.Version()
		if err != nil && !errors.Is(err, migrate.ErrNilVersion) {
			return fmt.Errorf("migrate version: %w", err)
		}
		applied := 0
		for _, e := range versions {
			if err == nil && e <= int(v) {
				applied++
			}
		}
		if n > applied {
			return usagef("migrate down %d: only %d migrations are applied; nothing was undone (down --all removes Baton's schema and every job)", n, applied)
		}
	}
	return nil
}
