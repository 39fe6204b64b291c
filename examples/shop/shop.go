package main

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baton-run/baton/db"
	"github.com/baton-run/baton/worker"
)

// The shop's queues: each ties a queue's name to its payload's type, for
// the code that submits and the handler that runs.
var (
	Welcomes = worker.Queue[Welcome]{Name: "welcome-emails"}
	Invoices = worker.Queue[Invoice]{Name: "invoices"}
	Receipts = worker.Queue[Receipt]{Name: "receipts"}
)

// Welcome is a welcome email to send.
type Welcome struct {
	UserID int64  `json:"user_id"`
	Email  string `json:"email"`
}

// Invoice is an order to charge.
type Invoice struct {
	OrderID int64  `json:"order_id"`
	Cents   int64  `json:"cents"`
	Email   string `json:"email"`
}

// Receipt is a charged order's receipt to send.
type Receipt struct {
	OrderID  int64  `json:"order_id"`
	LedgerID int64  `json:"ledger_id"`
	Email    string `json:"email"`
}

//go:embed schema.sql
var schema string

// Migrate applies Baton's migrations and then the shop's schema.
func Migrate(ctx context.Context, url string) error {
	if err := db.MigrateUp(ctx, url); err != nil {
		return err
	}
	pool, err := db.Connect(ctx, db.ConnectConfig{URL: url, AppName: "shop-migrate", MaxConns: 1})
	if err != nil {
		return err
	}
	defer pool.Close()
	_, err = pool.Exec(ctx, schema)
	return err
}

// Signup creates a user and submits their welcome email in one
// transaction: both commit, or neither does (a failed signup never sends a
// welcome, and a signup never lacks one).
func Signup(ctx context.Context, pool *pgxpool.Pool, email string) (userID int64, err error) {
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "INSERT INTO shop.users (email) VALUES ($1) RETURNING id", email).Scan(&userID); err != nil {
			return err
		}
		_, err := Welcomes.Submit(ctx, tx, Welcome{UserID: userID, Email: email})
		return err
	})
	return userID, err
}

// Shop runs the shop's handlers.
type Shop struct {
	Pool *pgxpool.Pool
	Log  *slog.Logger
	// ChargeTime stands for the card network's answer time.
	ChargeTime time.Duration
	// UnsafeLedger writes the ledger row in a transaction of its own, before
	// the job completes: what CompleteTx prevents, shown by the ledger
	// test (a charge run twice, after a crash or a lost lease, is booked
	// twice). Never do this.
	UnsafeLedger bool
}

// Pipeline is the shop's pipeline: welcome emails; invoices charged into
// the ledger, each handing a receipt on. lease is the stages' visibility
// timeout (0: the default, 30s).
func (s *Shop) Pipeline(lease time.Duration) *worker.Pipeline {
	return &worker.Pipeline{Stages: []worker.Stage{
		{Queue: Welcomes.Name, Handler: worker.HandlerSpec{Go: "welcome"}},
		{Queue: Invoices.Name, Handler: worker.HandlerSpec{Go: "charge"}, Next: Receipts.Name, Lease: worker.Duration(lease)},
		{Queue: Receipts.Name, Handler: worker.HandlerSpec{Go: "receipt"}},
	}}
}

// Handlers are the Go handlers the pipeline names.
func (s *Shop) Handlers() worker.Handlers {
	return worker.Handlers{
		"welcome": Welcomes.Handler(s.welcome),
		"charge":  worker.Then(Invoices, Receipts, s.charge),
		"receipt": Receipts.Handler(s.receipt),
	}
}

func (s *Shop) welcome(ctx context.Context, job *worker.Job, w Welcome) error {
	s.Log.Info("welcome email sent", "user", w.UserID, "to", w.Email) // ... an email provider's API ...
	return nil
}

// charge books the invoice in the ledger and completes its job in one
// transaction, so that however often it runs (a worker killed, a worker
// frozen past its lease whose job runs again elsewhere), the ledger holds
// one row per invoice. A card network's charge is made idempotent by its
// own key (the job's id), not by this transaction.
func (s *Shop) charge(ctx context.Context, job *worker.Job, in Invoice) (Receipt, error) {
	book := func(ctx context.Context, q interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}) (Receipt, error) {
		r := Receipt{OrderID: in.OrderID, Email: in.Email}
		err := q.QueryRow(ctx, "INSERT INTO shop.ledger (job_id, order_id, cents) VALUES ($1, $2, $3) RETURNING id",
			job.ID, in.OrderID, in.Cents).Scan(&r.LedgerID)
		return r, err
	}
	if s.UnsafeLedger {
		r, err := book(ctx, s.Pool)
		if err == nil {
			time.Sleep(s.ChargeTime) // ... the card network ...
		}
		return r, err
	}
	var r Receipt
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var err error
		if r, err = book(ctx, tx); err != nil {
			return err
		}
		time.Sleep(s.ChargeTime)                  // ... the card network, keyed by job.ID ...
		return worker.CompleteTx(ctx, tx, job, r) // worker.ErrLeaseLost: rolled back, nothing booked
	})
	if err != nil {
		return Receipt{}, fmt.Errorf("charging order %d: %w", in.OrderID, err)
	}
	return r, nil
}

func (s *Shop) receipt(ctx context.Context, job *worker.Job, r Receipt) error {
	s.Log.Info("receipt sent", "order", r.OrderID, "ledger", r.LedgerID, "to", r.Email)
	return nil
}
