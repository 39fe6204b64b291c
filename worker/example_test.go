package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baton-run/baton/batontest"
	"github.com/baton-run/baton/db"
	"github.com/baton-run/baton/worker"
)

// A pipeline built in Go, with typed handlers: a signup's welcome email,
// then a follow-up. Fields left zero take the defaults a pipeline file's
// stage gets (lease 30s, 5 attempts, 8 slots).
func ExampleNew() {
	ctx := context.Background()
	pool, cleanup, err := batontest.Open(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer cleanup()

	type signup struct{ Email string }
	type sent struct{ Email, Template string }
	w, err := worker.New(pool, worker.Config{
		Pipeline: &worker.Pipeline{Stages: []worker.Stage{
			{Queue: "welcome", Handler: worker.HandlerSpec{Go: "welcome"}, Next: "follow-up"},
			{Queue: "follow-up", Handler: worker.HandlerSpec{Go: "follow-up"}},
		}},
		Handlers: worker.Handlers{
			"welcome": worker.Typed(func(ctx context.Context, job *worker.Job, in signup) (sent, error) {
				return sent{Email: in.Email, Template: "welcome"}, nil // ... send it ...
			}),
			"follow-up": worker.Typed(func(ctx context.Context, job *worker.Job, in sent) (string, error) {
				return "followed up on " + in.Template + " to " + in.Email, nil
			}),
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	stop := run(w)
	defer stop()

	if _, err := db.Submit(ctx, pool, db.NewJob{Queue: "welcome", Payload: []byte(`{"Email":"ada@example.com"}`)}); err != nil {
		log.Fatal(err)
	}
	fmt.Println(result(ctx, pool, "follow-up"))
	// Output: "followed up on welcome to ada@example.com"
}

// A handler whose own write commits with its job's completion: the ledger
// row exists exactly once however often the handler runs (a crash, a lost
// lease), because CompleteTx commits only for the lease that still holds.
func ExampleCompleteTx() {
	ctx := context.Background()
	pool, cleanup, err := batontest.Open(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer cleanup()
	if _, err := pool.Exec(ctx, "CREATE TABLE ledger (job_id bigint PRIMARY KEY, cents bigint NOT NULL)"); err != nil {
		log.Fatal(err)
	}

	charge := func(ctx context.Context, job *worker.Job) (json.RawMessage, error) {
		var in struct{ Cents int64 }
		if err := json.Unmarshal(job.Payload, &in); err != nil {
			return nil, worker.Permanent(err)
		}
		// ... charge the card: an idempotent call, keyed by job.ID ...
		return nil, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "INSERT INTO ledger VALUES ($1, $2)", job.ID, in.Cents); err != nil {
				return err
			}
			return worker.CompleteTx(ctx, tx, job, map[string]int64{"charged": in.Cents}) // ErrLeaseLost: roll back
		})
	}
	w, err := worker.New(pool, worker.Config{
		Pipeline: &worker.Pipeline{Stages: []worker.Stage{{Queue: "charges", Handler: worker.HandlerSpec{Go: "charge"}, Next: "receipts"}}},
		Handlers: worker.Handlers{"charge": worker.HandlerFunc(charge)},
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	stop := run(w)
	defer stop()

	if _, err := db.Submit(ctx, pool, db.NewJob{Queue: "charges", Payload: []byte(`{"Cents":1250}`)}); err != nil {
		log.Fatal(err)
	}
	receipt := handedOff(ctx, pool, "receipts")
	var rows int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM ledger").Scan(&rows); err != nil {
		log.Fatal(err)
	}
	fmt.Println("ledger rows:", rows, "receipt payload:", string(receipt.Payload))
	// Output: ledger rows: 1 receipt payload: {"charged": 1250}
}

// run runs w until the returned function stops it.
func run(w *worker.Worker) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			log.Fatal(err)
		}
	}
}

// result waits for the first job of queue to succeed, and returns its result.
func result(ctx context.Context, pool *pgxpool.Pool, queue string) string {
	j := handedOff(ctx, pool, queue)
	s, err := batontest.Await(ctx, pool, j.ID, db.StateSucceeded)
	if err != nil {
		log.Fatal(err)
	}
	return string(s.Result)
}

// handedOff waits for the first job to appear in queue.
func handedOff(ctx context.Context, pool *pgxpool.Pool, queue string) db.JobStatus {
	j, err := batontest.AwaitSubmitted(ctx, pool, queue)
	if err != nil {
		log.Fatal(err)
	}
	return *j
}
