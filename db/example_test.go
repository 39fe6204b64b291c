package db_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/jackc/pgx/v5"

	"github.com/baton-run/baton/batontest"
	"github.com/baton-run/baton/db"
)

// Submit inside your own transaction: the job commits (and becomes visible to
// workers) only if the rest of your work does.
func ExampleSubmit_transaction() {
	ctx := context.Background()
	pool, cleanup, err := batontest.Open(ctx) // in your code: db.Connect(ctx, db.ConnectConfig{URL: url, AppName: "my-app"})
	if err != nil {
		log.Fatal(err)
	}
	defer cleanup()

	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// ... your own writes on tx ...
		_, err := db.Submit(ctx, tx, db.NewJob{Queue: "emails", Payload: []byte(`{"to":"ada@example.com"}`)})
		return err
	})
	if err != nil {
		log.Fatal(err)
	}

	// A transaction that rolls back takes its jobs with it.
	_ = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := db.Submit(ctx, tx, db.NewJob{Queue: "emails"}); err != nil {
			return err
		}
		return fmt.Errorf("order rejected")
	})

	q, err := db.Queues(ctx, pool, "emails")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("jobs in emails:", q[0].Available)
	// Output: jobs in emails: 1
}

// Submit many jobs in one statement; ids come back in input order.
func ExampleSubmit_batch() {
	ctx := context.Background()
	pool, cleanup, err := batontest.Open(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer cleanup()

	jobs := make([]db.NewJob, 1000)
	for i := range jobs {
		jobs[i] = db.NewJob{Queue: "resize", Payload: fmt.Appendf(nil, `{"image":%d}`, i)}
	}
	ids, err := db.Submit(ctx, pool, jobs...)
	if err != nil {
		log.Fatal(err)
	}
	last, err := db.Status(ctx, pool, ids[len(ids)-1])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(ids), "jobs; the last one's payload:", string(last.Payload))
	// Output: 1000 jobs; the last one's payload: {"image": 999}
}

// A request retried with its idempotency key submits its jobs once.
func ExampleSubmitWithKey() {
	ctx := context.Background()
	pool, cleanup, err := batontest.Open(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer cleanup()

	job := db.NewJob{Queue: "invoices", Payload: []byte(`{"order":42}`)}
	first, _, err := db.SubmitWithKey(ctx, pool, "order-42", job)
	if err != nil {
		log.Fatal(err)
	}
	again, replayed, err := db.SubmitWithKey(ctx, pool, "order-42", job)
	if err != nil {
		log.Fatal(err)
	}
	_, _, err = db.SubmitWithKey(ctx, pool, "order-42", db.NewJob{Queue: "invoices"})
	fmt.Println(first[0] == again[0], replayed, errors.Is(err, db.ErrKeyReused))
	// Output: true true true
}

// Page through a queue's jobs, newest first: the next page starts before
// the last job of this one.
func ExampleList() {
	ctx := context.Background()
	pool, cleanup, err := batontest.Open(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer cleanup()
	for range 5 {
		if _, err := db.Submit(ctx, pool, db.NewJob{Queue: "reports"}); err != nil {
			log.Fatal(err)
		}
	}

	pages := 0
	for o := (db.ListOptions{Queue: "reports", Limit: 2}); ; pages++ {
		page, err := db.List(ctx, pool, o)
		if err != nil {
			log.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		o.Before = page[len(page)-1].ID
	}
	fmt.Println("pages:", pages)
	// Output: pages: 3
}

// Cancel a job in the same transaction that withdraws the order it was for.
func ExampleCancel() {
	ctx := context.Background()
	pool, cleanup, err := batontest.Open(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer cleanup()
	ids, err := db.Submit(ctx, pool, db.NewJob{Queue: "shipping"})
	if err != nil {
		log.Fatal(err)
	}

	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// ... mark the order withdrawn on tx ...
		return db.Cancel(ctx, tx, ids[0])
	})
	if err != nil {
		log.Fatal(err)
	}
	s, err := db.Status(ctx, pool, ids[0])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.State, errors.Is(db.Cancel(ctx, pool, ids[0]), db.ErrConflict))
	// Output: canceled true
}
