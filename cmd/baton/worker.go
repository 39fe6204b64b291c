package main

import (
	"cmp"
	"context"
	"flag"

	"github.com/baton-run/baton/db"
	"github.com/baton-run/baton/worker"
)

func workerCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	config := fs.String("config", "", "pipeline file (YAML)")
	id := fs.String("id", "", "name of this replica in leases and history (default hostname-pid)")
	pollOnly := fs.Bool("poll-only", false, "no LISTEN/NOTIFY wake-ups (for PgBouncer transaction pooling)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if *config == "" || len(pos) > 0 {
		return usagef("worker: usage: baton worker --config FILE [--id NAME] [--poll-only]")
	}
	p, err := worker.LoadPipeline(*config)
	if err != nil {
		return err
	}
	*id = cmp.Or(*id, worker.DefaultID())
	// application_name names the replica, so operators (and fault injection)
	// can find its connections in pg_stat_activity.
	pool, err := db.Connect(ctx, databaseURL(), "baton-worker "+*id, worker.PoolSize(p))
	if err != nil {
		return err
	}
	defer pool.Close()
	w, err := worker.New(pool, worker.Config{Pipeline: p, ID: *id, Logger: logger(), PollOnly: *pollOnly})
	if err != nil {
		return err
	}
	return w.Run(ctx)
}
