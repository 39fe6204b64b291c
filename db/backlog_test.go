package db_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/db"
	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
)

func setMaxBacklog(t *testing.T, c db.Conn, queue string, n int32) {
	t.Helper()
	_, err := store.New(c).QueueSet(context.Background(), store.QueueSetParams{Name: queue, MaxBacklog: &n, SetMaxBacklog: true})
	require.NoError(t, err)
}

func waiting(t *testing.T, c db.Conn, queue string) int64 {
	t.Helper()
	q, err := db.Queues(context.Background(), c, queue)
	require.NoError(t, err)
	return q[0].Scheduled + q[0].Available + q[0].Retrying
}

// A queue's max_backlog refuses the submit that would take it past the
// limit, whole, and inserts nothing; once jobs leave the queue, submits are
// accepted again. Delayed and retrying jobs count; finished ones do not.
func TestMaxBacklogRefusesWholeSubmitsPastIt(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	setMaxBacklog(t, pool, "a", 100)
	jobs := make([]db.NewJob, 99)
	for i := range jobs {
		jobs[i] = db.NewJob{Queue: "a"}
	}
	_, err := db.Submit(ctx, pool, jobs...)
	require.NoError(t, err)
	_, err = db.Submit(ctx, pool, db.NewJob{Queue: "a", Delay: 3600e9}) // the 100th, delayed: it counts
	require.NoError(t, err)

	_, err = db.Submit(ctx, pool, db.NewJob{Queue: "a"})
	require.ErrorIs(t, err, db.ErrQueueFull)
	require.ErrorContains(t, err, "queue a is full: 100 jobs waiting, at most 100")
	_, err = db.Submit(ctx, pool, db.NewJob{Queue: "b"}, db.NewJob{Queue: "a"})
	require.ErrorIs(t, err, db.ErrQueueFull, "a batch is all or nothing")
	require.EqualValues(t, 100, waiting(t, pool, "a"))
	require.Empty(t, must(db.Queues(ctx, pool, "b")), "nothing of the batch went in")

	// Two jobs leave (one succeeds, one is canceled): two places open.
	_, err = pool.Exec(ctx, "UPDATE baton.jobs SET state = 'succeeded', finished_at = now() WHERE id = (SELECT min(id) FROM baton.jobs)")
	require.NoError(t, err)
	page, err := db.List(ctx, pool, db.ListOptions{Queue: "a", Limit: 1})
	require.NoError(t, err)
	require.NoError(t, db.Cancel(ctx, pool, page[0].ID))
	_, err = db.Submit(ctx, pool, db.NewJob{Queue: "a"}, db.NewJob{Queue: "a"}, db.NewJob{Queue: "a"})
	require.ErrorIs(t, err, db.ErrQueueFull, "three do not fit in two")
	_, err = db.Submit(ctx, pool, db.NewJob{Queue: "a"}, db.NewJob{Queue: "a"})
	require.NoError(t, err)
	require.EqualValues(t, 100, waiting(t, pool, "a"))

	// A hand-off into the full queue is never refused: it would lose work.
	ids, err := db.Submit(ctx, pool, db.NewJob{Queue: "up"})
	require.NoError(t, err)
	rows, err := store.New(pool).JobClaim(ctx, store.JobClaimParams{QueueName: "up", MaxJobs: 1, LeaseMs: 30000, WorkerID: "w", MaxAttempts: 5, MaxJobLeaseMs: 30000})
	require.NoError(t, err)
	done, err := store.New(pool).JobCompleteMany(ctx, store.JobCompleteManyParams{Ids: ids, LeaseTokens: []int64{rows[0].LeaseToken}, Results: []string{"{}"},
		NextQueues: []string{"a"}, TraceParents: []string{""}, RunUs: []int64{0}, Direct: []bool{false}})
	require.NoError(t, err)
	require.Len(t, done, 1)
	require.EqualValues(t, 101, waiting(t, pool, "a"), "past max_backlog by the hand-off")
}

// Submits racing for a queue's last places take turns: 20 submitters of 10
// jobs each into a max_backlog of 100 fill it exactly.
func TestMaxBacklogHoldsUnderConcurrentSubmits(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	setMaxBacklog(t, pool, "a", 100)
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted, refused := 0, 0
	for range 20 {
		wg.Go(func() {
			jobs := make([]db.NewJob, 10)
			for i := range jobs {
				jobs[i] = db.NewJob{Queue: "a"}
			}
			_, err := db.Submit(ctx, pool, jobs...)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				accepted++
			} else {
				require.ErrorIs(t, err, db.ErrQueueFull)
				refused++
			}
		})
	}
	wg.Wait()
	require.Equal(t, 10, accepted)
	require.Equal(t, 10, refused)
	require.EqualValues(t, 100, waiting(t, pool, "a"))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
