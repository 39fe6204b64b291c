package db_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/db"
	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/worker"
)

// Every operation takes a pool, a connection or a transaction; in a
// transaction that rolls back, each leaves nothing behind, and in one that
// commits, each is there.
func TestEveryOperationComposesWithTheCallersTransaction(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	ids, err := db.Submit(ctx, pool, db.NewJob{Queue: "a"}, db.NewJob{Queue: "a"})
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "UPDATE baton.jobs SET state = 'dead', finished_at = now() WHERE id = $1", ids[1])
	require.NoError(t, err)

	ops := func(tx pgx.Tx) {
		_, err := db.Submit(ctx, tx, db.NewJob{Queue: "a"})
		require.NoError(t, err)
		_, _, err = db.SubmitWithKey(ctx, tx, "k", db.NewJob{Queue: "a"})
		require.NoError(t, err)
		require.NoError(t, db.Cancel(ctx, tx, ids[0]))
		require.NoError(t, db.Retry(ctx, tx, ids[1]))
		require.NoError(t, db.Pause(ctx, tx, "a"))
		s, err := db.Status(ctx, tx, ids[0])
		require.NoError(t, err)
		require.Equal(t, db.StateCanceled, s.State, "the transaction sees its own writes")
		page, err := db.List(ctx, tx, db.ListOptions{Queue: "a"})
		require.NoError(t, err)
		require.Len(t, page, 4)
		q, err := db.Queues(ctx, tx, "a")
		require.NoError(t, err)
		require.True(t, q[0].Paused)
	}
	state := func() string {
		page, err := db.List(ctx, pool, db.ListOptions{})
		require.NoError(t, err)
		q, err := db.Queues(ctx, pool)
		require.NoError(t, err)
		out := fmt.Sprintf("jobs=%d paused=%v", len(page), q[0].Paused)
		for _, j := range page {
			out += fmt.Sprintf(" %d:%s", j.ID, j.State)
		}
		return out
	}
	before := state()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	ops(tx)
	require.NoError(t, tx.Rollback(ctx))
	require.Equal(t, before, state(), "rolled back: nothing changed")

	tx, err = pool.Begin(ctx)
	require.NoError(t, err)
	ops(tx)
	require.NoError(t, tx.Commit(ctx))
	// (Ids 3 and 4 went with the rollback: a sequence does not roll back.)
	require.Equal(t, fmt.Sprintf("jobs=4 paused=true %d:available %d:available %d:available %d:canceled", ids[1]+4, ids[1]+3, ids[1], ids[0]), state())
}

// Errors are the package's, never pgx's: a missing job is ErrNotFound, a
// change its state does not allow ErrConflict, a bad argument ErrInvalid.
// A refused retry in the caller's transaction leaves it usable.
func TestErrorsAreTyped(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	for name, err := range map[string]error{
		"status": func() error { _, err := db.Status(ctx, pool, 404); return err }(),
		"cancel": db.Cancel(ctx, pool, 404),
		"retry":  db.Retry(ctx, pool, 404),
		"pause":  db.Pause(ctx, pool, "nope"),
		"resume": db.Resume(ctx, pool, "nope"),
	} {
		require.ErrorIs(t, err, db.ErrNotFound, name)
		require.False(t, errors.Is(err, pgx.ErrNoRows), "%s: %v leaks pgx.ErrNoRows", name, err)
	}
	ids, err := db.Submit(ctx, pool, db.NewJob{Queue: "a", UniqueKey: "u"})
	require.NoError(t, err)
	require.ErrorIs(t, db.Retry(ctx, pool, ids[0]), db.ErrConflict, "only dead or canceled jobs")

	_, err = db.Submit(ctx, pool, db.NewJob{Queue: "Not A Queue"})
	require.ErrorIs(t, err, db.ErrInvalid)
	_, err = db.List(ctx, pool, db.ListOptions{Limit: 1001})
	require.ErrorIs(t, err, db.ErrInvalid)
	_, err = db.List(ctx, pool, db.ListOptions{State: "done"})
	require.ErrorIs(t, err, db.ErrInvalid)
	_, _, err = db.SubmitWithKey(ctx, pool, "k", db.NewJob{Queue: "a"})
	require.NoError(t, err)
	_, _, err = db.SubmitWithKey(ctx, pool, "k", db.NewJob{Queue: "b"})
	require.ErrorIs(t, err, db.ErrKeyReused)

	// A canceled unique job whose key another live job took: its retry is
	// refused, and the caller's transaction goes on.
	require.NoError(t, db.Cancel(ctx, pool, ids[0]))
	_, err = db.Submit(ctx, pool, db.NewJob{Queue: "a", UniqueKey: "u"})
	require.NoError(t, err)
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		require.ErrorIs(t, db.Retry(ctx, tx, ids[0]), db.ErrConflict)
		_, err := db.Submit(ctx, tx, db.NewJob{Queue: "a"})
		return err
	}))

	require.Same(t, db.ErrLeaseLost, worker.ErrLeaseLost, "one value for both")
}

// List's zero value is the first page of every job, newest first; Before
// pages on, Limit sizes; filters by queue, state and tag.
func TestListPages(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	jobs := make([]db.NewJob, 250)
	for i := range jobs {
		jobs[i] = db.NewJob{Queue: []string{"a", "b"}[i%2]}
		if i%10 == 0 {
			jobs[i].Tags = []string{"tenth"}
		}
	}
	ids, err := db.Submit(ctx, pool, jobs...)
	require.NoError(t, err)

	page, err := db.List(ctx, pool, db.ListOptions{})
	require.NoError(t, err)
	require.Len(t, page, 100)
	require.Equal(t, ids[249], page[0].ID, "newest first")

	var all []int64
	for o := (db.ListOptions{Queue: "a", Limit: 40}); ; o.Before = all[len(all)-1] {
		page, err := db.List(ctx, pool, o)
		require.NoError(t, err)
		for _, j := range page {
			require.Equal(t, "a", j.Queue)
			all = append(all, j.ID)
		}
		if len(page) < o.Limit {
			break
		}
	}
	require.Len(t, all, 125)

	tagged, err := db.List(ctx, pool, db.ListOptions{Tag: "tenth", Limit: 1000})
	require.NoError(t, err)
	require.Len(t, tagged, 25)
	running, err := db.List(ctx, pool, db.ListOptions{State: db.StateRunning})
	require.NoError(t, err)
	require.Empty(t, running)

	q, err := db.Queues(ctx, pool)
	require.NoError(t, err)
	require.Len(t, q, 2)
	require.Equal(t, db.QueueCounts{Queue: "a", Available: 125}, db.QueueCounts{Queue: q[0].Queue, Available: q[0].Available})
}
