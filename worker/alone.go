package worker

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/baton-run/baton/internal/store"
)

// Crash isolation. A job that lost its lease while it ran beside other jobs
// (its worker died, froze or lost the database) may be a bystander of one
// that killed the worker, or the one that did: the reaper does not count
// that attempt and marks the job isolated (queries/jobs.sql, JobReap). An
// isolated job runs alone on a replica, so that if it kills its worker
// again it takes nobody with it, and the lease it loses then is its own.
//
// A worker holds at most one isolated job at a time. It claims one (on a
// poll, or a hint from the reaper naming its queue with "!"), keeps its lease
// by heartbeats while it drains (no stage claims, no direct hand-off starts),
// and once nothing else is in flight it marks the run alone (JobStartAlone)
// and starts the handler. When that handler is over, the worker looks for
// the next isolated job before its stages claim again: a crash leaves as
// many isolated jobs as its worker had in flight (hundreds, with slots
// grown under a backlog), and one a poll interval per replica took minutes
// to run them. SKIP LOCKED hands each isolated job to one worker, so one
// worker drains for it, not every one.

// claimIsolated claims an isolated job of the stage's queue, if this worker
// holds none, and runs it alone.
func (s *stage) claimIsolated(ctx context.Context) {
	w := s.w
	if !w.isolating.CompareAndSwap(false, true) {
		s.lookIsolated.Store(true) // one at a time: look again when this worker's is over
		return
	}
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbTimeout)
	defer cancel()
	p := store.JobClaimIsolatedParams{
		QueueName: s.cfg.Queue, LeaseMs: s.cfg.Lease.D().Milliseconds(), WorkerID: w.cfg.ID,
		MaxAttempts: int32(s.cfg.MaxAttempts), MaxJobLeaseMs: s.cfg.MaxJobLease.D().Milliseconds(),
		GlobalConcurrency: int32(s.cfg.GlobalConcurrency), GroupConcurrency: int32(s.cfg.GroupConcurrency),
	}
	var row store.JobClaimIsolatedRow
	var err error
	if s.limited() {
		err = s.holdingQueue(qctx, 1, func(q *store.Queries, _ int) (int, error) {
			row, err = q.JobClaimIsolated(qctx, p)
			return 1, err
		})
		if err == nil && row.ID == 0 {
			err = pgx.ErrNoRows // the rate let no claim through
		}
	} else {
		row, err = store.New(w.pool).JobClaimIsolated(qctx, p)
	}
	if err != nil {
		if err := store.MapError(err); !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
			s.log.Warn("claiming an isolated job", "error", err)
		}
		w.leaveAlone(false)
		return
	}
	c := claimed{
		job: &Job{
			ID: row.ID, Queue: row.Queue, Payload: row.Payload, Attempt: int(row.Attempts), MaxAttempts: int(row.MaxAttempts),
			Priority: int(row.Priority), ParentID: row.ParentID, CreatedAt: row.CreatedAt, Tags: row.Tags, Group: deref(row.GroupKey),
		},
		token: row.LeaseToken, traceParent: deref(row.TraceParent), pickup: row.StartedAt.Sub(row.RunAt),
	}
	s.noteOverrides(ctx, []*claimed{&c}, []*int32{row.TimeoutMs}, []*int32{row.LeaseMs})
	s.jobLog(c.job).Info("running alone: this job lost a lease while it ran beside others", "lost_leases", row.LostLeases)
	r := c.run()
	w.aloneRun.Store(&r)
	// Held, and heartbeated like a running job, while the worker drains.
	hctx, release := context.WithCancelCause(w.handlerCtx)
	s.mu.Lock()
	s.listLocked(c.job.ID, c.token, c.lease, release)
	s.mu.Unlock()
	w.alone.Go(func() { s.runAlone(ctx, hctx, c) })
}

// runAlone waits until the held job is the only one in flight on this
// worker, then starts it. Shutdown, or a lost lease, gives it up first.
func (s *stage) runAlone(ctx, held context.Context, c claimed) {
	w, job, token := s.w, c.job, c.token
	for w.othersInFlight() > 0 && ctx.Err() == nil && held.Err() == nil {
		select {
		case <-w.settled:
		case <-ctx.Done():
		case <-held.Done():
		}
	}
	if ctx.Err() == nil && held.Err() == nil {
		qctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
		n, err := retryDB(qctx, func() (int64, error) {
			return store.New(w.pool).JobStartAlone(qctx, store.JobStartAloneParams{ID: job.ID, LeaseToken: token})
		})
		cancel()
		if err == nil && n == 1 {
			s.mu.Lock()
			in := s.running[job.ID]
			delete(s.running, job.ID) // start lists it again, with its handler's context
			s.mu.Unlock()
			if in != nil {
				in.cancel(nil)
			}
			s.start(c, false) // leaveAlone once it is over
			return
		}
		if err != nil {
			s.jobLog(job).Error("marking the run alone failed; the job comes back when its lease expires", "error", err)
		}
	}
	if ctx.Err() != nil { // shutting down before the run started: give the job back
		rctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
		_, err := store.New(w.pool).JobReleaseMany(rctx, store.JobReleaseManyParams{Ids: []int64{job.ID}, LeaseTokens: []int64{token}, WorkerID: w.cfg.ID})
		cancel()
		if err != nil {
			s.log.Error("releasing a held isolated job failed; it comes back when its lease expires", "error", store.MapError(err))
		}
	}
	s.mu.Lock()
	s.unlistLocked(c.run())
	s.mu.Unlock()
	w.leaveAlone(false)
}

// othersInFlight counts what runs or waits to be committed on this worker
// beside the held isolated job: every stage's claimed jobs and reserved
// hand-off slots, less the held job itself.
func (w *Worker) othersInFlight() int {
	n := -1
	for _, s := range w.stages {
		s.mu.Lock()
		n += len(s.running) + s.slots.reserved
		s.mu.Unlock()
	}
	return n
}

// leaveAlone ends isolation: the stages claim again, after looking for
// another isolated job first if a lone run just ended (ran: more of the
// crash's jobs may wait). A claim that found none looks no further, or it
// would ask again at once.
func (w *Worker) leaveAlone(ran bool) {
	w.aloneRun.Store(nil)
	w.isolating.Store(false)
	for _, s := range w.stages {
		if ran {
			s.lookIsolated.Store(true)
		}
		signal(s.wake)
	}
}
