package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/golang-migrate/migrate/v4"

	"github.com/baton-run/baton/db"
)

func migrateCmd(ctx context.Context, args []string, stdout io.Writer) error {
	pos, err := parseFlags(flag.NewFlagSet("migrate", flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("migrate: want up, down [N] or version")
	}
	steps := -1 // down: all
	switch {
	case pos[0] == "up" && len(pos) == 1, pos[0] == "version" && len(pos) == 1:
	case pos[0] == "down" && len(pos) <= 2:
		if len(pos) == 2 {
			if steps, err = strconv.Atoi(pos[1]); err != nil || steps < 1 {
				return usagef("migrate down: N must be a positive number, got %q", pos[1])
			}
		}
	default:
		return usagef("migrate: want up, down [N] or version, got %q", pos)
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
		if steps < 0 {
			err = m.Down()
		} else {
			err = m.Steps(-steps)
		}
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
		fmt.Fprintf(stdout, "version: %d (dirty: a migration failed half-way; fix it, then force)\n", v)
	default:
		fmt.Fprintf(stdout, "version: %d\n", v)
	}
	return nil
}
