package main

import (
	"context"
	"go/parser"
	"go/token"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/batontest"
	"github.com/baton-run/baton/db"
	"github.com/baton-run/baton/worker"
)

// The shop is what a user could write: it imports Baton's public packages
// only (its tests too).
func TestTheShopUsesPublicPackagesOnly(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	for _, f := range files {
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, imp := range parsed.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			require.False(t, strings.HasPrefix(path, "github.com/baton-run/baton/") && strings.Contains(path, "/internal"), "%s imports %s", f, path)
		}
	}
}

// newShop is a fresh database with the shop's tables.
func newShop(t *testing.T) (*pgxpool.Pool, string) {
	pool, url := batontest.NewWithURL(t)
	require.NoError(t, Migrate(context.Background(), url))
	return pool, url
}

// A signup and its welcome email commit together: the email is submitted
// inside the signup's transaction, and a signup that fails submits none.
func TestSignupSubmitsItsWelcomeInItsTransaction(t *testing.T) {
	t.Parallel()
	pool, _ := newShop(t)
	ctx := context.Background()

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	var userID int64
	require.NoError(t, tx.QueryRow(ctx, "INSERT INTO shop.users (email) VALUES ('grace@example.com') RETURNING id").Scan(&userID))
	_, err = Welcomes.Submit(ctx, tx, Welcome{UserID: userID, Email: "grace@example.com"})
	require.NoError(t, err)
	batontest.RequireSubmitted(t, tx, Welcomes.Name)
	batontest.RequireNotSubmitted(t, pool, Welcomes.Name) // not before the commit
	require.NoError(t, tx.Rollback(ctx))

	id, err := Signup(ctx, pool, "ada@example.com")
	require.NoError(t, err)
	j := batontest.RequireSubmitted(t, pool, Welcomes.Name)
	require.JSONEq(t, `{"user_id":`+strconv.FormatInt(id, 10)+`,"email":"ada@example.com"}`, string(j.Payload))

	_, err = Signup(ctx, pool, "ada@example.com") // taken: the signup fails, and sends nothing
	require.Error(t, err)
	batontest.RequireSubmittedN(t, pool, Welcomes.Name, 1)
}

// An invoice's charge, worked by batontest.Work: booked in the ledger once,
// its receipt handed on with the ledger row's id.
func TestAnInvoiceIsChargedOnceAndHandsOnItsReceipt(t *testing.T) {
	t.Parallel()
	pool, _ := newShop(t)
	ctx := context.Background()
	shop := &Shop{Pool: pool, Log: slog.New(slog.DiscardHandler)}
	id, err := Invoices.Submit(ctx, pool, Invoice{OrderID: 42, Cents: 1999, Email: "ada@example.com"})
	require.NoError(t, err)

	// The charge's attempt, through a real worker of the shop's pipeline.
	j := batontest.Work(t, pool, worker.Config{Pipeline: shop.Pipeline(0), Handlers: shop.Handlers(), Logger: shop.Log}, id)
	require.Equal(t, db.StateSucceeded, j.State)
	r := batontest.RequireSubmitted(t, pool, Receipts.Name)
	require.Equal(t, []int64{r.ID}, j.Children)

	var ledgerID, cents int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT id, cents FROM shop.ledger WHERE job_id = $1", id).Scan(&ledgerID, &cents))
	require.EqualValues(t, 1999, cents)
	require.JSONEq(t, `{"order_id":42,"ledger_id":`+strconv.FormatInt(ledgerID, 10)+`,"email":"ada@example.com"}`, string(r.Payload))
}
