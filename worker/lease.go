package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/baton-run/baton/internal/store"
)

// Reasons a running handler's context is cancelled by the worker itself.
var (
	// errLeaseLost: the heartbeat found the job no longer ours (reaped or canceled).
	errLeaseLost = fmt.Errorf("job %w", store.ErrLeaseLost)
	// errReleased: shutdown grace ran out and the lease was handed back.
	errReleased = errors.New("worker shut down: lease released")
)

// heartbeatLoop extends the leases of this stage's running jobs every third
// of the shortest lease among them (the stage's, or a job's own), and stops
// the handlers of jobs whose lease is gone.
func (s *stage) heartbeatLoop(ctx context.Context) {
	t := time.NewTimer(s.beatEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.heartbeat(ctx)
		case <-s.beatSooner: // a job with a shorter lease started
		}
		t.Reset(s.beatEvery())
	}
}

// beatEvery is a third of the shortest lease the heartbeats keep.
func (s *stage) beatEvery() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beatLease = s.cfg.Lease.D()
	for _, in := range s.running {
		if in.lease > 0 {
			s.beatLease = min(s.beatLease, in.lease)
		}
	}
	return s.beatLease / 3
}

func (s *stage) heartbeat(ctx context.Context) {
	ids, tokens := s.snapshot()
	if len(ids) == 0 {
		return
	}
	hctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	kept, err := store.New(s.w.pool).JobHeartbeat(hctx, store.JobHeartbeatParams{
		Ids: ids, LeaseTokens: tokens, LeaseMs: s.cfg.Lease.D().Milliseconds(), MaxJobLeaseMs: s.cfg.MaxJobLease.D().Milliseconds(),
	})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("heartbeat failed", "error", store.MapError(err), "jobs", len(ids))
		}
		return
	}
	if len(kept) == len(ids) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, id := range ids {
		if in := s.running[id]; in != nil && in.token == tokens[i] && !slices.Contains(kept, id) {
			in.cancel(errLeaseLost)
		}
	}
}

// snapshot lists running jobs in id order, so batch writes lock rows in a
// consistent order.
func (s *stage) snapshot() (ids, tokens []int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.running {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		tokens = append(tokens, s.running[id].token)
	}
	return ids, tokens
}

// releaseAll hands the leases of still-running jobs back to the queue, then
// stops their handlers; their own writes are then fenced.
func (s *stage) releaseAll(ctx context.Context) {
	ids, tokens := s.snapshot()
	if len(ids) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	released, err := store.New(s.w.pool).JobReleaseMany(rctx, store.JobReleaseManyParams{Ids: ids, LeaseTokens: tokens, WorkerID: s.w.cfg.ID})
	if err != nil {
		s.log.Error("releasing leases failed; they come back when they expire", "error", store.MapError(err))
	}
	s.w.stats.released.Add(int64(len(released)))
	s.log.Warn("shutdown grace over: released leases of unfinished jobs", "released", len(released), "running", len(ids))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, in := range s.running {
		in.cancel(errReleased)
	}
}
