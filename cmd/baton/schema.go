package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/baton-run/baton/internal/store"
)

// registerWaitForMigrations adds serve's and worker's --wait-for-migrations
// (env BATON_WAIT_FOR_MIGRATIONS).
func registerWaitForMigrations(fs *flag.FlagSet) (*bool, error) {
	def, err := envBool("BATON_WAIT_FOR_MIGRATIONS")
	if err != nil {
		return nil, err
	}
	return fs.Bool("wait-for-migrations", def,
		"on a database whose schema is missing or behind this binary, wait for baton migrate up instead of exiting (env BATON_WAIT_FOR_MIGRATIONS)"), nil
}

// awaitSchema checks, as serve and worker start, that the database's schema
// is one this binary runs against: the same version, or a newer one that
// accepts it (a rolling upgrade). Otherwise it returns why (store.ErrSchema:
// exit 2), or with wait, and a schema a migration can still make usable,
// says so once and checks again each second until it is.
func awaitSchema(ctx context.Context, conn store.DBTX, wait bool, log *slog.Logger) error {
	s, err := store.ReadSchema(ctx, conn)
	if err != nil {
		return err
	}
	problem := s.Check()
	switch {
	case problem == nil:
		if s.Applied > s.Binary {
			log.Info("the schema is newer than this binary and accepts it", "schema", s.Applied, "binary", s.Binary, "compatible_since", s.CompatibleSince)
		}
		return nil
	case !wait || !s.Waitable():
		return problem
	}
	log.Warn("waiting for migrations (--wait-for-migrations)", "reason", problem.Error())
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		// Errors are not logged: the database may come and go while a
		// migration runs, and this says why it waits once.
		if s, err = store.ReadSchema(ctx, conn); err != nil {
			continue
		}
		switch problem := s.Check(); {
		case problem == nil:
			log.Info("the schema is ready", "schema", s.Applied, "binary", s.Binary)
			return nil
		case !s.Waitable():
			return problem
		}
	}
}

// migrateStatus prints the applied migration, the binary's, and whether
// serve and worker of this binary would run against the schema.
func migrateStatus(ctx context.Context, stdout io.Writer) error {
	pool, err := connectCLI(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	s, err := store.ReadSchema(ctx, pool)
	if err != nil {
		return err
	}
	applied := fmt.Sprint(s.Applied)
	if s.Applied == 0 {
		applied = "none"
	} else if s.Dirty {
		applied += " (dirty)"
	}
	fmt.Fprintf(stdout, "applied: %s\nbinary:  %d\n", applied, s.Binary)
	switch problem := s.Check(); {
	case problem != nil:
		fmt.Fprintf(stdout, "status:  %v\n", problem)
	case s.Applied > s.Binary:
		fmt.Fprintf(stdout, "status:  newer than this binary, and accepts it (binaries from migration %d on)\n", s.CompatibleSince)
	default:
		fmt.Fprintln(stdout, "status:  up to date")
	}
	return nil
}
