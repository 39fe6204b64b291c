package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/worker"
)

// A job's group goes with its journey: a hand-off, direct (the next stage
// claimed by the same worker) or not, keeps it.
func TestAHandOffKeepsTheGroup(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var mu sync.Mutex
	seen := map[string]int{} // the group each handler saw
	name := b.handle(worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) {
		mu.Lock()
		seen[j.Group]++
		mu.Unlock()
		return j.Payload, nil
	}))
	r := b.start("poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: " + name + "}\n    next: b\n  - queue: b\n    handler: {go: " + name + "}\n    next: c\n  - queue: c\n    handler: {go: " + name + "}\n")
	var ids []int64
	for range 20 {
		got, err := store.Submit(context.Background(), b.pool, store.NewJob{Queue: "a", Group: "tenant-7"})
		require.NoError(t, err)
		ids = append(ids, got...)
	}
	for _, id := range ids {
		b.waitState(id, "succeeded")
	}
	require.Eventually(t, func() bool {
		return count(t, b.pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'c' AND state = 'succeeded'") == 20
	}, 20*time.Second, 10*time.Millisecond)
	r.Stop(t)
	require.Equal(t, 60, count(t, b.pool, "SELECT count(*) FROM baton.jobs WHERE group_key = 'tenant-7'"))
	c, err := store.Status(context.Background(), b.pool, int64(count(t, b.pool, "SELECT max(id) FROM baton.jobs WHERE queue = 'c'")))
	require.NoError(t, err)
	require.Equal(t, "tenant-7", c.Group, "shown in the status")
	mu.Lock()
	require.Equal(t, map[string]int{"tenant-7": 60}, seen, "every handler sees the group (worker.Job.Group)")
	mu.Unlock()
	t.Logf("direct hand-offs: %d of 40", count(t, b.pool, "SELECT count(*) FROM baton.jobs WHERE queue IN ('b', 'c') AND started_at = created_at"))
}

// submitGroups submits perGroup jobs to queue for each group, interleaved
// (g0 #0, g1 #0, ..., g0 #1, ...), each with its number in its group as
// its payload.
func submitGroups(t *testing.T, pool *pgxpool.Pool, queue string, groups []string, perGroup int) {
	var jobs []store.NewJob
	for i := range perGroup {
		for _, g := range groups {
			jobs = append(jobs, store.NewJob{Queue: queue, Group: g, Payload: json.RawMessage(fmt.Sprint(i))})
		}
	}
	for batch := range slices.Chunk(jobs, 1000) {
		_, err := store.Submit(context.Background(), pool, batch...)
		require.NoError(t, err)
	}
}

// groupProbe watches the jobs of each group run: how many at once in the
// handlers, and in which order they start.
type groupProbe struct {
	mu      sync.Mutex
	now     map[string]int
	most    map[string]int
	started map[string][]string // per group: "seq" or "seq retry" for each start
}

func newGroupProbe() *groupProbe {
	return &groupProbe{now: map[string]int{}, most: map[string]int{}, started: map[string][]string{}}
}

// handler runs a job for d; it fails the first attempt of every job whose
// number fail says.
func (p *groupProbe) handler(d time.Duration, fail func(seq int) bool) worker.Handler {
	return worker.HandlerFunc(func(ctx context.Context, j *worker.Job) (json.RawMessage, error) {
		var seq int
		if err := json.Unmarshal(j.Payload, &seq); err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.now[j.Group]++
		p.most[j.Group] = max(p.most[j.Group], p.now[j.Group])
		p.started[j.Group] = append(p.started[j.Group], fmt.Sprint(seq, " attempt ", j.Attempt))
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			p.now[j.Group]--
			p.mu.Unlock()
		}()
		time.Sleep(d)
		if j.Attempt == 1 && fail(seq) {
			return nil, errors.New("first attempt fails")
		}
		return nil, nil
	})
}

// mostRunningPerGroup samples the database every 10 ms until ctx ends and
// returns the most jobs of one group of queue it saw running at once.
func mostRunningPerGroup(ctx context.Context, pool *pgxpool.Pool, queue string) <-chan int {
	out := make(chan int, 1)
	go func() {
		most := 0
		for ctx.Err() == nil {
			var n int
			err := pool.QueryRow(ctx, `SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM baton.jobs
				WHERE queue = $1 AND state = 'running' AND group_key IS NOT NULL GROUP BY group_key) g`, queue).Scan(&n)
			if err == nil {
				most = max(most, n)
			}
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
		out <- most
	}()
	return out
}

func drained(t *testing.T, pool *pgxpool.Pool, queue string, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = $1 AND state = 'succeeded'", queue) == n
	}, 2*time.Minute, 20*time.Millisecond, "the queue drains")
}

// With group_concurrency: 2 and three replicas of 10 slots each, no group
// ever has more than 2 jobs running, and the limit is used.
func TestGroupConcurrencyHoldsAcrossReplicas(t *testing.T) {
	t.Parallel()
	pool, url := dbtest.NewWithURL(t)
	groups := []string{"g0", "g1", "g2", "g3", "g4", "g5", "g6", "g7", "g8", "g9"}
	submitGroups(t, pool, "a", groups, 20)
	sctx, stop := context.WithCancel(context.Background())
	sampled := mostRunningPerGroup(sctx, pool, "a")

	p := newGroupProbe()
	replicas(t, url, 3, "poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: h}\n    concurrency: 10\n    group_concurrency: 2\n",
		p.handler(20*time.Millisecond, func(int) bool { return false }))
	drained(t, pool, "a", 200)
	stop()
	most := <-sampled
	t.Logf("most of one group running at once: %v in handlers, %d sampled in the database", p.most, most)
	require.LessOrEqual(t, most, 2)
	used := 0
	for _, g := range groups {
		require.LessOrEqual(t, p.most[g], 2, "group %s: the limit is never exceeded", g)
		used = max(used, p.most[g])
	}
	require.Equal(t, 2, used, "the limit is used")
}

// With group_concurrency: 1 a group's jobs run one at a time in submit
// order over every replica: a job whose attempt fails runs again before the
// next job of its group starts (it keeps its place), while other groups go
// on.
func TestGroupConcurrencyOneRunsEachGroupInOrderAcrossRetries(t *testing.T) {
	t.Parallel()
	pool, url := dbtest.NewWithURL(t)
	groups := []string{"g0", "g1", "g2", "g3", "g4"}
	const perGroup = 20
	submitGroups(t, pool, "a", groups, perGroup)
	p := newGroupProbe()
	replicas(t, url, 3, "poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: h}\n    concurrency: 10\n    group_concurrency: 1\n    backoff: 30ms\n",
		p.handler(5*time.Millisecond, func(seq int) bool { return seq%3 == 1 }))
	drained(t, pool, "a", len(groups)*perGroup)

	p.mu.Lock()
	defer p.mu.Unlock()
	for _, g := range groups {
		var want []string
		for i := range perGroup {
			want = append(want, fmt.Sprint(i, " attempt 1"))
			if i%3 == 1 {
				want = append(want, fmt.Sprint(i, " attempt 2"))
			}
		}
		require.Equal(t, want, p.started[g], "group %s runs in submit order, each retry before the next job", g)
		require.Equal(t, 1, p.most[g])
	}
}

// fairProbe counts each group's finished jobs.
type fairProbe struct {
	mu   sync.Mutex
	done map[string]int
}

func (p *fairProbe) handler(d time.Duration) worker.Handler {
	return worker.HandlerFunc(func(ctx context.Context, j *worker.Job) (json.RawMessage, error) {
		time.Sleep(d)
		p.mu.Lock()
		p.done[j.Group]++
		p.mu.Unlock()
		return nil, nil
	})
}

func (p *fairProbe) finished(group string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done[group]
}

// The starvation test: group big has 5,000 jobs waiting (50 ms handlers,
// 10 slots) when group small submits 100. With fair: true, small's last job
// finishes before big has finished 400 more.
func TestFairSharesDoNotStarveASmallGroup(t *testing.T) {
	t.Parallel()
	pool, url := dbtest.NewWithURL(t)
	submitGroups(t, pool, "a", []string{"big"}, 5000)
	p := &fairProbe{done: map[string]int{}}
	replicas(t, url, 1, "poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: h}\n    concurrency: 10\n    fair: true\n", p.handler(50*time.Millisecond))
	require.Eventually(t, func() bool { return p.finished("big") >= 50 }, time.Minute, 5*time.Millisecond, "big's jobs run")

	before := p.finished("big")
	submitGroups(t, pool, "a", []string{"small"}, 100)
	require.Eventually(t, func() bool { return p.finished("small") == 100 }, time.Minute, 5*time.Millisecond)
	more := p.finished("big") - before
	t.Logf("big finished %d jobs while small finished its 100", more)
	require.Less(t, more, 400)
}

// Without fair, the same small group waits behind the big one's whole
// backlog (here 500 jobs): jobs go by priority, then age.
func TestWithoutFairASmallGroupWaitsBehindTheBacklog(t *testing.T) {
	t.Parallel()
	pool, url := dbtest.NewWithURL(t)
	submitGroups(t, pool, "a", []string{"big"}, 500)
	p := &fairProbe{done: map[string]int{}}
	replicas(t, url, 1, "poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: h}\n    concurrency: 10\n", p.handler(50*time.Millisecond))
	require.Eventually(t, func() bool { return p.finished("big") >= 50 }, time.Minute, 5*time.Millisecond, "big's jobs run")
	submitGroups(t, pool, "a", []string{"small"}, 100)
	require.Eventually(t, func() bool { return p.finished("small") == 100 }, time.Minute, 5*time.Millisecond)
	require.GreaterOrEqual(t, p.finished("big"), 490, "small's jobs ran after (nearly) all of big's")
}

// With weights 3 and 1 and both groups backlogged, their completions over
// 30 s are in the ratio 3 ± 0.5.
func TestFairSharesFollowTheGroupsWeights(t *testing.T) {
	t.Parallel()
	pool, url := dbtest.NewWithURL(t)
	ctx := context.Background()
	three := int32(3)
	_, err := store.New(pool).QueueGroupWeight(ctx, store.QueueGroupWeightParams{Queue: "a", GroupKey: "heavy", Weight: &three})
	require.NoError(t, err)
	submitGroups(t, pool, "a", []string{"heavy", "light"}, 6000)
	p := &fairProbe{done: map[string]int{}}
	replicas(t, url, 1, "poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: h}\n    concurrency: 10\n    fair: true\n", p.handler(50*time.Millisecond))

	require.Eventually(t, func() bool { return p.finished("light") > 0 }, time.Minute, 5*time.Millisecond)
	heavy, light := p.finished("heavy"), p.finished("light")
	time.Sleep(30 * time.Second) // the window the completions are counted over
	heavy, light = p.finished("heavy")-heavy, p.finished("light")-light
	ratio := float64(heavy) / float64(light)
	t.Logf("over 30 s: heavy %d, light %d: %.2f to 1", heavy, light, ratio)
	require.InDelta(t, 3, ratio, 0.5)
}

// With rate_limit: "20/s" and three replicas, a backlog of 200 is claimed
// at 20 per second (± 10 %) after its first second's burst, in database
// time.
func TestRateLimitHoldsAcrossReplicas(t *testing.T) {
	t.Parallel()
	pool, url := dbtest.NewWithURL(t)
	submitN(t, pool, "a", 200)
	var p limitProbe
	replicas(t, url, 3, "poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: h}\n    concurrency: 10\n    rate_limit: 20/s\n", p.handler(0))
	drained(t, pool, "a", 200)

	var burst, rest float64 // claims in the first second; seconds from then to the last claim
	err := pool.QueryRow(context.Background(), `
		WITH c AS (SELECT started_at FROM baton.jobs WHERE queue = 'a'),
		     f AS (SELECT min(started_at) AS t0 FROM c)
		SELECT count(*) FILTER (WHERE started_at < t0 + interval '1 second'),
		       extract(epoch FROM max(started_at) - (t0 + interval '1 second'))
		FROM c, f GROUP BY t0`).Scan(&burst, &rest)
	require.NoError(t, err)
	rate := (200 - burst) / rest
	t.Logf("%v claims in the first second, then %.1f per second", burst, rate)
	// One more may fall in the first second as started_at counts it: a
	// claim's tokens are counted at its turn, its started_at a little later.
	require.LessOrEqual(t, burst, 41.0, "a burst of at most one second's worth, plus that second's rate")
	require.InDelta(t, 20, rate, 2)
}
