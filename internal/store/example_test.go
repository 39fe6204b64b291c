package store_test

import (
	"context"
	"fmt"
	"log"

	"github.com/jackc/pgx/v5"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
)

// Submit inside your own transaction: the job commits (and becomes visible to
// workers) only if the rest of your work does.
func ExampleSubmit_transaction() {
	ctx := context.Background()
	pool, _, cleanup, err := dbtest.Open(ctx) // in your code: store.Connect(ctx, store.ConnectConfig{URL: url, AppName: "my-app"})
	if err != nil {
		log.Fatal(err)
	}
	defer cleanup()

	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// ... your own writes on tx ...
		_, err := store.Submit(ctx, tx, store.NewJob{Queue: "emails", Payload: []byte(`{"to":"ada@example.com"}`)})
		return err
	})
	if err != nil {
		log.Fatal(err)
	}

	// A transaction that rolls back takes its jobs with it.
	_ = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := store.Submit(ctx, tx, store.NewJob{Queue: "emails"}); err != nil {
			return err
		}
		return fmt.Errorf("order rejected")
	})

	var n int
	_ = pool.QueryRow(ctx, "SELECT count(*) FROM baton.jobs WHERE queue = 'emails'").Scan(&n)
	fmt.Println("jobs in emails:", n)
	// Output: jobs in emails: 1
}

// Submit many jobs in one statement; ids come back in input order.
func ExampleSubmit_batch() {
	ctx := context.Background()
	pool, _, cleanup, err := dbtest.Open(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer cleanup()

	jobs := make([]store.NewJob, 1000)
	for i := range jobs {
		jobs[i] = store.NewJob{Queue: "resize", Payload: fmt.Appendf(nil, `{"image":%d}`, i)}
	}
	ids, err := store.Submit(ctx, pool, jobs...)
	if err != nil {
		log.Fatal(err)
	}
	last, err := store.Status(ctx, pool, ids[len(ids)-1])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(ids), "jobs; the last one's payload:", string(last.Payload))
	// Output: 1000 jobs; the last one's payload: {"image": 999}
}
