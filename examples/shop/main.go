// Command shop is a small service built on Baton's public Go packages: a
// signup that submits its welcome email in the signup's transaction, an
// invoice pipeline of typed queues (invoices → receipts) whose charge books
// the ledger with worker.CompleteTx, and tests with batontest.
//
//	shop migrate                 Baton's migrations and the shop's tables
//	shop worker [flags]          a worker replica (SIGINT/SIGTERM stop it gracefully)
//	shop signup EMAIL            a user, and their welcome email
//	shop invoice ORDER CENTS EMAIL
//
// DATABASE_URL names the database (default: db.DefaultURL).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/baton-run/baton/db"
	"github.com/baton-run/baton/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "shop:", err)
		if errors.Is(err, errUsage) || errors.Is(err, db.ErrInvalid) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage: shop migrate | worker [--id ID] [--lease D] [--charge-time D] | signup EMAIL | invoice ORDER CENTS EMAIL")

func run(ctx context.Context, args []string) error {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		url = db.DefaultURL
	}
	if len(args) == 0 {
		return errUsage
	}
	if args[0] == "migrate" {
		return Migrate(ctx, url)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	shop := &Shop{Log: log}
	switch args[0] {
	case "worker":
		fs := flag.NewFlagSet("worker", flag.ContinueOnError)
		id := fs.String("id", worker.DefaultID(), "the replica's name")
		lease := fs.Duration("lease", 0, "the invoices stage's lease (default 30s)")
		fs.DurationVar(&shop.ChargeTime, "charge-time", 0, "how long the (simulated) card network takes")
		fs.BoolVar(&shop.UnsafeLedger, "unsafe-ledger", false, "book the ledger outside the completion's transaction (a demonstration of what goes wrong)")
		if err := fs.Parse(args[1:]); err != nil {
			return errUsage
		}
		p := shop.Pipeline(*lease)
		pool, err := db.Connect(ctx, db.ConnectConfig{URL: url, AppName: "shop-worker " + *id, MaxConns: p.PoolSize() + 4}) // and the ledger's transactions (CompleteTx)
		if err != nil {
			return err
		}
		defer pool.Close()
		shop.Pool = pool
		w, err := worker.New(pool, worker.Config{Pipeline: p, Handlers: shop.Handlers(), ID: *id, Logger: log})
		if err != nil {
			return err
		}
		return w.Run(ctx)
	case "signup", "invoice":
		pool, err := db.Connect(ctx, db.ConnectConfig{URL: url, AppName: "shop", MaxConns: 2})
		if err != nil {
			return err
		}
		defer pool.Close()
		var id int64
		switch {
		case args[0] == "signup" && len(args) == 2:
			id, err = Signup(ctx, pool, args[1])
		case args[0] == "invoice" && len(args) == 4:
			order, err1 := strconv.ParseInt(args[1], 10, 64)
			cents, err2 := strconv.ParseInt(args[2], 10, 64)
			if err1 != nil || err2 != nil {
				return errUsage
			}
			id, err = Invoices.Submit(ctx, pool, Invoice{OrderID: order, Cents: cents, Email: args[3]})
		default:
			return errUsage
		}
		if err != nil {
			return err
		}
		fmt.Println(id)
		return nil
	}
	return errUsage
}
