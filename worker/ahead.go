package worker

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/baton-run/baton/internal/store"
)

// Claiming ahead. While a backlog waits, a stage claims more jobs than it
// has free slots: the surplus waits in the stage (ahead) and starts the
// moment a slot frees, without a claim's round trip, and each claim carries
// more jobs for its fixed cost (under CPU contention that cost dominates:
// docs/benchmarks.md). The jobs waiting are leased and listed as running,
// so heartbeats keep their leases and a crash returns them when the leases
// expire (each then runs alone, as any job of a crashed worker: maxAhead
// bounds how many, and maxAheadBytes the memory they hold). A limited stage (global or group concurrency, fair
// shares, a rate) never claims ahead, since the database counts a claimed
// job as running; and no more wait than the slots run in aheadSpan at the
// handler's recent pace, so that a slow handler's jobs stay in the queue
// for other replicas. At shutdown the jobs waiting are given back at once
// (releaseAhead).

// aheadSpan is the most work, in the handler's time over the slots, that
// the jobs claimed ahead may add up to (less for a lease under ten times
// as long).
const aheadSpan = 250 * time.Millisecond

// maxAhead is the most jobs a stage claims ahead, and maxAheadBytes the
// most bytes of payload they may hold, at the recent claims' mean.
const (
	maxAhead      = 1000
	maxAheadBytes = 32 << 20
)

// aheadLocked is how many claimed jobs may wait for a slot now.
func (s *stage) aheadLocked() int {
	if s.draining || s.caughtUp.Load() || s.limited() {
		return 0
	}
	return s.slots.ahead(min(aheadSpan, s.cfg.Lease.D()/10))
}

// nextAheadLocked takes the next job claimed ahead for a free slot, and
// counts it started. A job whose lease was lost while it waited (reaped
// while this process was frozen, or canceled) is dropped.
func (s *stage) nextAheadLocked() (task, bool) {
	for len(s.ahead) > 0 && !s.draining && s.slots.busy < s.slots.size {
		t := s.ahead[0]
		s.ahead[0] = task{}
		s.ahead = s.ahead[1:]
		if t.ctx.Err() != nil {
			s.unlistLocked(t.c.run())
			s.w.stats.leasesLost.Add(1)
			s.metrics.leasesLost.Inc()
			signal(s.w.settled)
			continue
		}
		s.beginLocked(false)
		return t, true
	}
	return task{}, false
}

// startAhead starts jobs claimed ahead in every free slot (the slot count
// may have grown).
func (s *stage) startAhead() {
	for {
		s.mu.Lock()
		t, ok := s.nextAheadLocked()
		s.mu.Unlock()
		if !ok {
			return
		}
		s.dispatch(t)
	}
}

// startClaimed starts a claim's jobs in the free slots, and keeps the rest
// waiting for one.
func (s *stage) startClaimed(cs []claimed) {
	if len(cs) == 0 {
		return
	}
	now := time.Now()
	starts := s.starting[:0] // one slice for every claim: grown per claim, it was a tenth of the worker's bytes
	bytes := 0
	for _, c := range cs {
		bytes += len(c.job.Payload)
	}
	s.mu.Lock()
	s.slots.claimedBytes(bytes, len(cs))
	for _, c := range cs {
		t := s.takeLocked(c)
		if s.draining || s.slots.busy >= s.slots.size {
			t.queued = now
			s.ahead = append(s.ahead, t)
			s.metrics.claimedAhead.Inc()
			continue
		}
		s.beginLocked(false)
		starts = append(starts, t)
	}
	s.mu.Unlock()
	for _, t := range starts {
		s.dispatch(t)
	}
	clear(starts) // keeps no job's context
	s.starting = starts
}

// drain stops jobs claimed ahead from starting: shutdown began.
func (s *stage) drain() {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
}

// releaseAhead gives back the jobs claimed ahead that never started, once
// the claim loop stopped: they are available again at once to other
// replicas, their attempt not counted (JobReleaseMany).
func (s *stage) releaseAhead() {
	s.mu.Lock()
	s.draining = true // drain's own call may not have run yet
	waiting := s.ahead
	s.ahead = nil
	runs := make([]run, len(waiting))
	for i, t := range waiting {
		runs[i] = t.c.run()
		s.unlistLocked(runs[i])
	}
	s.mu.Unlock()
	if len(runs) == 0 {
		return
	}
	signal(s.w.settled)
	slices.SortFunc(runs, func(a, b run) int { return cmp.Compare(a.id, b.id) }) // rows locked in one order
	p := store.JobReleaseManyParams{Ids: make([]int64, len(runs)), LeaseTokens: make([]int64, len(runs)), WorkerID: s.w.cfg.ID}
	for i, r := range runs {
		p.Ids[i], p.LeaseTokens[i] = r.id, r.token
	}
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	released, err := store.New(s.w.pool).JobReleaseMany(ctx, p)
	if err != nil {
		s.log.Error("giving back jobs claimed ahead failed; they come back when their leases expire", "error", store.MapError(err), "jobs", len(runs))
	}
	s.w.stats.released.Add(int64(len(released)))
}
