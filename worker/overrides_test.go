package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/maintenance"
	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/worker"
)

// submitJob submits one job as given and returns its id.
func (b *bundle) submitJob(j store.NewJob) int64 {
	b.t.Helper()
	ids, err := store.Submit(context.Background(), b.pool, j)
	require.NoError(b.t, err)
	return ids[0]
}

// A job's own timeout replaces the stage's, capped by max_job_timeout; the
// history of a capped job says so, on the claim of each attempt.
func TestAJobsOwnTimeoutIsCappedByItsStage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	name := b.handle(worker.HandlerFunc(func(ctx context.Context, _ *worker.Job) (json.RawMessage, error) {
		<-ctx.Done() // runs until its timeout
		return nil, ctx.Err()
	}))
	b.start(fmt.Sprintf(`poll_interval: 20ms
stages:
  - queue: a
    handler: {go: %q}
    timeout: 300ms
    max_job_timeout: 500ms
    max_attempts: 1
`, name))

	short := b.waitState(b.submitJob(store.NewJob{Queue: "a", Timeout: 200 * time.Millisecond}), "dead")
	require.Equal(t, "timeout: handler ran longer than the job's own 200ms", *short.LastError)
	require.Equal(t, "200ms", short.Timeout)
	for _, e := range short.History {
		require.Nil(t, e.Note, "no cap, no note")
	}

	capped := b.waitState(b.submitJob(store.NewJob{Queue: "a", Timeout: time.Hour}), "dead")
	require.Equal(t, "timeout: handler ran longer than the job's own 500ms", *capped.LastError)
	var notes []string
	for _, e := range capped.History {
		if e.Note != nil {
			require.Equal(t, store.BatonJobStateRunning, e.To, "the note is on the claim")
			notes = append(notes, *e.Note)
		}
	}
	require.Equal(t, []string{"timeout 1h0m0s capped to the stage's max_job_timeout 500ms"}, notes)
	require.Equal(t, []string{">available", "available>running", "running>dead: timeout: handler ran longer than the job's own 500ms"},
		changes(capped), "the claim row with its note stands in for the implied one")
}

// A job with a shorter timeout of its own, started while a run with the
// stage's long one is under way, still ends at its own: the stage's one
// timer is armed again for the earlier deadline (timeout.go). The long run
// goes on.
func TestAShortTimeoutEndsItsRunBesideALongOne(t *testing.T) {
	t.Parallel()
	b := setup(t)
	started := make(chan int64, 2)
	name := b.handle(worker.HandlerFunc(func(ctx context.Context, j *worker.Job) (json.RawMessage, error) {
		started <- j.ID
		<-ctx.Done() // runs until its timeout, or the worker stops
		return nil, ctx.Err()
	}))
	b.start(fmt.Sprintf("poll_interval: 20ms\nshutdown_grace: 50ms\nstages:\n  - queue: a\n    handler: {go: %q}\n    timeout: 1h\n    max_attempts: 1\n", name))

	long := b.submitJob(store.NewJob{Queue: "a"})
	require.Equal(t, long, <-started)
	short := b.waitState(b.submitJob(store.NewJob{Queue: "a", Timeout: 200 * time.Millisecond}), "dead")
	require.Equal(t, "timeout: handler ran longer than the job's own 200ms", *short.LastError)
	still, err := store.Status(context.Background(), b.pool, long)
	require.NoError(t, err)
	require.Equal(t, store.BatonJobStateRunning, still.State, "the long run goes on")
}

// A job's own lease, shorter than the stage's, is the one the claim sets and
// the heartbeats keep: they come as often as it needs, so the job, running
// for several of its leases, never loses it. (The lease is 1 s, not the
// 100 ms minimum: a beat every third of it must survive a loaded CI
// machine's stalls, which once exceeded 170 ms.)
func TestAJobsOwnShortLeaseIsKeptByHeartbeats(t *testing.T) {
	t.Parallel()
	b := setup(t)
	leased := make(chan time.Duration, 1)
	name := b.handle(worker.HandlerFunc(func(ctx context.Context, j *worker.Job) (json.RawMessage, error) {
		var left float64
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT extract(epoch FROM lease_expires_at - now()) FROM baton.jobs WHERE id = $1", j.ID).Scan(&left))
		leased <- time.Duration(left * float64(time.Second))
		time.Sleep(3 * time.Second) // three of its leases; the stage's heartbeats would come every 10 s
		return nil, ctx.Err()
	}))
	b.start(fmt.Sprintf("poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: %q}\n    lease: 30s\n", name))

	id := b.submitJob(store.NewJob{Queue: "a", Lease: time.Second})
	require.InDelta(t, time.Second, <-leased, float64(300*time.Millisecond), "the claim set the job's own lease")
	s := b.waitState(id, "succeeded")
	require.Equal(t, int32(0), s.LostLeases)
	require.Equal(t, int32(1), s.Attempts)
	require.Equal(t, "1s", s.Lease)
}

// Tags stay with a journey: the jobs handed off keep them, through a
// fan-out and its join, and each is found under its tag; a prune forgets
// them with their jobs.
func TestTagsStayWithTheJourney(t *testing.T) {
	t.Parallel()
	b := setup(t)
	split := b.handle(worker.HandlerFunc(func(context.Context, *worker.Job) (json.RawMessage, error) {
		return json.RawMessage(`[1, 2, 3]`), nil
	}))
	seen := make(chan []string, 10)
	each := b.handle(worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) {
		seen <- j.Tags
		return j.Payload, nil
	}))
	r := b.start(fmt.Sprintf(`poll_interval: 20ms
stages:
  - queue: split
    handler: {go: %q}
    fan_out: true
    next: each
  - queue: each
    handler: {go: %q}
    join: true
    next: done
`, split, each))

	root := b.submitJob(store.NewJob{Queue: "split", Tags: []string{"customer-42", "rush"}})
	require.Eventually(t, func() bool {
		return count(t, b.pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'done'") == 1
	}, 20*time.Second, 10*time.Millisecond)
	for range 3 {
		require.Equal(t, []string{"customer-42", "rush"}, <-seen, "a handler sees its job's tags")
	}
	require.Equal(t, 5, count(t, b.pool, "SELECT count(*) FROM baton.jobs WHERE tags = '{customer-42,rush}'"),
		"the root, three fanned out, the join")
	require.Equal(t, 5, count(t, b.pool, "SELECT count(*) FROM baton.job_tags WHERE tag = 'customer-42'"))

	page, err := store.ListJobs(context.Background(), b.pool, store.JobListParams{BeforeID: 1 << 62, MaxJobs: 10}, "rush")
	require.NoError(t, err)
	require.Len(t, page, 5)
	require.Equal(t, root, page[4].ID, "newest first")
	queue := "each"
	page, err = store.ListJobs(context.Background(), b.pool, store.JobListParams{Queue: &queue, BeforeID: page[1].ID, MaxJobs: 1}, "rush")
	require.NoError(t, err)
	require.Len(t, page, 1)
	require.Equal(t, "each", page[0].Queue)

	// The worker's own maintenance prunes too: stop it, so that its prune
	// does not delete these jobs first.
	r.Stop(t)
	_, err = b.pool.Exec(context.Background(), "UPDATE baton.jobs SET finished_at = now() - interval '2 days' WHERE finished_at IS NOT NULL")
	require.NoError(t, err)
	_, _, err = maintenance.Prune(context.Background(), b.pool, maintenance.Retention{Succeeded: time.Hour})
	require.NoError(t, err)
	require.Equal(t, 1, count(t, b.pool, "SELECT count(DISTINCT job_id) FROM baton.job_tags"), "the join's job, still waiting in done")
	require.Equal(t, 1, count(t, b.pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'done' AND tags = '{customer-42,rush}'"))
}
