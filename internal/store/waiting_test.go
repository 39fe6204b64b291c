package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
)

// A claim locks the waiting rows of the jobs it takes, then updates the
// jobs. A transaction that holds a job's row and changes it (a cancel, a
// delay set by hand) makes the claim wait for it; its trigger cannot delete
// the waiting row the claim holds and passes over it. Neither waits for the
// other: no deadlock. The claim then takes the job only if it still waits
// and is due, and deletes the row it held either way; a job that still
// waits has the row the trigger wrote (dbtest checks the rows after each
// test).
func TestAClaimWaitsForAChangeToItsJobAndTakesItOnlyIfItStillWaits(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		change  func(ctx context.Context, tx pgx.Tx, id int64) error
		state   store.JobState
		waiting int // the job's rows in baton.waiting_jobs after it all
	}{
		{"canceled", func(ctx context.Context, tx pgx.Tx, id int64) error {
			return store.Cancel(ctx, tx, id)
		}, store.BatonJobStateCanceled, 0},
		{"delayed by hand", func(ctx context.Context, tx pgx.Tx, id int64) error {
			_, err := tx.Exec(ctx, "UPDATE baton.jobs SET state = 'scheduled', run_at = now() + interval '1 hour' WHERE id = $1", id)
			return err
		}, store.BatonJobStateScheduled, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pool := dbtest.New(t)
			ctx := context.Background()
			ids := submit(t, pool, store.NewJob{Queue: "a"}, store.NewJob{Queue: "a"}, store.NewJob{Queue: "a"})

			tx, err := pool.Begin(ctx)
			require.NoError(t, err)
			defer tx.Rollback(ctx) //nolint:errcheck // committed below
			_, err = tx.Exec(ctx, "SELECT 1 FROM baton.jobs WHERE id = $1 FOR UPDATE", ids[0])
			require.NoError(t, err)

			type result struct {
				rows []store.JobClaimRow
				err  error
			}
			claimed := make(chan result, 1)
			go func() {
				rows, err := store.New(pool).JobClaim(ctx, store.JobClaimParams{QueueName: "a", MaxJobs: 10, LeaseMs: 30000, WorkerID: "w", MaxAttempts: 5})
				claimed <- result{rows, err}
			}()
			require.Eventually(t, func() bool {
				var waits bool
				require.NoError(t, pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
					WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%JobClaim %')`).Scan(&waits))
				return waits
			}, 10*time.Second, 5*time.Millisecond, "the claim waits for the job's row")

			require.NoError(t, c.change(ctx, tx, ids[0]), "the change does not wait for the claim")
			require.NoError(t, tx.Commit(ctx))
			r := <-claimed
			require.NoError(t, r.err)
			var got []int64
			for _, row := range r.rows {
				got = append(got, row.ID)
			}
			require.Equal(t, ids[1:], got, "the changed job is not claimed")

			s, err := store.Status(ctx, pool, ids[0])
			require.NoError(t, err)
			require.Equal(t, c.state, s.State)
			require.Equal(t, c.waiting, count(t, pool, "SELECT count(*) FROM baton.waiting_jobs WHERE id = $1", ids[0]))
		})
	}
}
