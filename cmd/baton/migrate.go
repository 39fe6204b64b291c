package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/golang-migrate/migrate/v4"

	"github.com/baton-run/baton/db"
)

func migrateCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newCommand("migrate", "baton migrate up | down N | down --all | force N | version")
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
	m, err := db.Migrator(ctx, target)
	if err != nil {
		return err
	}
	defer m.Close()
	switch pos[0] {
	case "up":
		err = m.Up()
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
