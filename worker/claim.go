package worker

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baton-run/baton/internal/maintenance"
	"github.com/baton-run/baton/internal/store"
)

// maxRetryWait caps the wait between claims while the database is
// unavailable (they back off from the poll interval), so that work resumes
// within seconds of its return.
const maxRetryWait = 2 * time.Second

// claimLoop claims as many jobs as there are free slots and starts them. When
// a claim fills every free slot there may be more due, so it claims again as
// soon as a slot frees; otherwise it waits for the poll interval or a wake-up.
// An isolated job that may be waiting is claimed before the others
// (alone.go).
func (s *stage) claimLoop(ctx context.Context) {
	poll := time.NewTicker(s.w.cfg.Pipeline.PollInterval.D())
	defer poll.Stop()
	backlog := true
	s.lookAhead.Store(true)
	s.lookIsolated.Store(true)
	s.readLimit(ctx)
	stop := context.AfterFunc(ctx, s.drain)
	defer stop()
	// After the last claim.
	defer s.releaseAhead()
	var retry time.Duration // while the database is unavailable: the wait before trying again
	for ctx.Err() == nil {
		s.startAhead() // in slots the slot count grew by
		if s.lookIsolated.Swap(false) {
			s.claimIsolated(ctx) // first: a job it holds stops the claims below
		}
		// Shutdown may have begun while this turn of the loop read limits or
		// looked for an isolated job, and a handler that returned since freed
		// its slot: a draining worker claims nothing new. (Checked after
		// free, which a handler's return changes.)
		if free := s.free(); free > 0 && ctx.Err() == nil {
			n, err := s.claim(ctx, free)
			// A connection ended under the claim (an administrator's or a
			// proxy's doing) is dropped by the pool; claim again at once on
			// another, not after a poll interval. Each try drops one, so a
			// pool of them all ended (a restart) ends in a connect error.
			for tries := int32(0); store.ConnectionLost(err) && tries < s.w.pool.Config().MaxConns && ctx.Err() == nil; tries++ {
				n, err = s.claim(ctx, free)
			}
			switch {
			case err != nil && ctx.Err() == nil:
				s.log.Warn("claiming jobs", "error", err)
				backlog = false
				if errors.Is(store.MapError(err), store.ErrUnavailable) {
					poll := s.w.cfg.Pipeline.PollInterval.D()
					retry = min(max(2*retry, poll), max(maxRetryWait, poll))
				}
			case err == nil:
				backlog, retry = n == free, 0
				s.noteClaim(backlog)
			}
			if retry > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(retry):
				}
				continue
			}
			s.caughtUp.Store(!backlog)
			if err == nil && !backlog && s.lookAhead.Swap(false) {
				s.setAlarm(ctx)
			}
		}
		for {
			select {
			case <-ctx.Done():
			case <-poll.C:
				s.pollTick()
				s.lookAhead.Store(true)
				s.lookIsolated.Store(true)
				s.readLimit(ctx)
			case <-s.wake:
			case <-s.freed:
				if !backlog && !s.limited() {
					continue // an idle queue is polled, not re-claimed per completion
				}
			}
			break
		}
	}
}

// setAlarm asks how long until the queue's earliest job that is not due yet
// (delayed, or waiting for its retry) becomes due, and wakes the stage then:
// such a job starts on time rather than at the next poll. The database says
// how long, so that no clock but its own decides when a job is due.
func (s *stage) setAlarm(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	ms, err := store.New(s.w.pool).JobNextDue(qctx, s.cfg.Queue)
	switch {
	case err != nil && ctx.Err() == nil:
		s.log.Warn("looking for the next due job", "error", store.MapError(err))
	case err == nil && ms >= 0:
		s.wakeIn(time.Duration(ms) * time.Millisecond)
	}
}

// wakeIn wakes the stage after d, unless it is to wake earlier already.
func (s *stage) wakeIn(d time.Duration) {
	at := time.Now().Add(d)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.alarm != nil && !s.alarmAt.After(at) {
		return
	}
	if s.alarm != nil {
		s.alarm.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		s.mu.Lock()
		if s.alarm == t {
			s.alarm = nil
		}
		s.mu.Unlock()
		s.lookAhead.Store(true) // for the job due after this one
		signal(s.wake)
	})
	s.alarm, s.alarmAt = t, at
}

// floorMargin is how far below the run_at of the jobs it claimed last a
// stage's next claim starts reading the claim index (JobClaim's floor): a
// submit or hand-off that commits later than its run_at (its transaction's
// start) by less than this is found by the next claim; one later still,
// by the check below the floor (watchFloor).
const floorMargin = 250 * time.Millisecond

// claimFloor is where a stage's next claim starts reading the claim index
// (JobClaim): the priority and run_at of the last job it claimed, less
// floorMargin.
type claimFloor struct {
	priority int16
	runAt    time.Time
}

// maxFloorWait is the longest between two checks below a stage's floor.
const maxFloorWait = 30 * time.Second

// watchFloor checks below the stage's claim floor (JobBelowFloor) every
// poll interval, or less often when the check is slow, so that it takes at
// most a twentieth of the time: while a transaction holds back vacuum it
// reads every job claimed since (250 ms after two minutes at 3,175 jobs/s,
// and growing). The stage's next claim starts reading at the oldest job it
// finds, not at the index's front (which steps over every job claimed
// since, as this check does). In a loop of its own, so that no claim waits
// for it.
//
// One replica of those working the queue checks an interval (maintenance.TakeTurn,
// the step floor:<queue>): even clean, the check reads the claim index's entries below
// the floor left since the last vacuum (2,000 pages, 50 ms a check at four
// replicas), and each replica's own checks multiplied that. The one that
// checks finds every job below its floor; a job between its floor and
// another's is in its own claims' range.
func (s *stage) watchFloor(ctx context.Context) {
	poll := s.w.cfg.Pipeline.PollInterval.D()
	wait := poll
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if f := s.floor.Load(); f != nil && s.belowFloor.Load() == nil &&
			maintenance.TakeTurn(ctx, store.New(s.w.pool), "floor:"+s.cfg.Queue, wait*9/10, s.log) {
			began := time.Now()
			s.w.stats.floorChecks.Add(1)
			qctx, cancel := context.WithTimeout(ctx, dbTimeout)
			oldest, err := store.New(s.w.pool).JobBelowFloor(qctx, store.JobBelowFloorParams{
				QueueName: s.cfg.Queue, FloorPriority: int32(f.priority), FloorRunAt: f.runAt,
			})
			cancel()
			switch {
			case err == nil:
				s.belowFloor.Store(&claimFloor{priority: f.priority, runAt: oldest})
				signal(s.wake)
			case !errors.Is(err, pgx.ErrNoRows) && ctx.Err() == nil:
				s.log.Warn("looking for jobs below the claim floor", "error", store.MapError(err))
			}
			wait = max(poll, min(20*time.Since(began), maxFloorWait))
		}
		t.Reset(wait)
	}
}

func (s *stage) claim(ctx context.Context, n int) (int, error) {
	// Not cancelled by shutdown: a claim cut off after its commit would strand
	// its jobs until their leases expire.
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbTimeout)
	defer cancel()
	began := time.Now()
	p := store.JobClaimParams{
		QueueName: s.cfg.Queue, MaxJobs: int32(n), LeaseMs: s.cfg.Lease.D().Milliseconds(), WorkerID: s.w.cfg.ID,
		MaxAttempts: int32(s.cfg.MaxAttempts), MaxJobLeaseMs: s.cfg.MaxJobLease.D().Milliseconds(),
		GlobalConcurrency: int32(s.cfg.GlobalConcurrency),
	}
	f := s.belowFloor.Swap(nil)
	if f == nil {
		f = s.floor.Load()
	}
	if f != nil {
		p.FloorPriority, p.FloorRunAt = int32(f.priority), &f.runAt
	} else {
		s.w.stats.floorlessClaims.Add(1)
	}
	rows, err := s.claimRows(qctx, p)
	if err = store.MapError(err); errors.Is(err, store.ErrUnreadable) || errors.Is(err, context.DeadlineExceeded) {
		// A row that cannot be read fails the claim as a whole (or takes
		// longer than dbTimeout to fail: writing out 1 GB takes seconds).
		// Claim again with every payload checked, and fail that job alone.
		s.log.Warn("claiming again with payloads checked: a job of the queue may not be readable", "error", err)
		p.CheckPayloads = true
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkedClaimTimeout)
		defer cancel()
		rows, err = s.claimRows(qctx, p)
		err = store.MapError(err)
	}
	s.metrics.claimSeconds.Observe(time.Since(began).Seconds())
	if err != nil {
		return 0, err
	}
	if len(rows) > 0 {
		s.w.stats.claimBatches.Add(1)
		if last := rows[len(rows)-1]; !s.grouped() { // in (priority, run_at, id) order
			s.floor.Store(&claimFloor{priority: last.Priority, runAt: last.RunAt.Add(-floorMargin)})
		}
	}
	cs := make([]claimed, len(rows))
	var own []*claimed // the jobs with a timeout or lease of their own
	var timeouts, leases []*int32
	for i, r := range rows {
		cs[i] = claimed{
			job: &Job{
				ID: r.ID, Queue: r.Queue, Payload: r.Payload, Attempt: int(r.Attempts), MaxAttempts: int(r.MaxAttempts),
				Priority: int(r.Priority), ParentID: r.ParentID, CreatedAt: r.CreatedAt, Tags: r.Tags, Group: deref(r.GroupKey),
			},
			token: r.LeaseToken, traceParent: deref(r.TraceParent), pickup: r.StartedAt.Sub(r.RunAt),
		}
		if r.TimeoutMs != nil || r.LeaseMs != nil {
			own, timeouts, leases = append(own, &cs[i]), append(timeouts, r.TimeoutMs), append(leases, r.LeaseMs)
		}
	}
	if len(own) > 0 {
		s.noteOverrides(ctx, own, timeouts, leases)
	}
	readable := cs[:0]
	for i, r := range rows {
		if r.Payload == nil { // only a claim with payloads checked returns one (the column is NOT NULL)
			s.jobLog(cs[i].job).Error("poison row: its payload cannot be read; the job ends dead, its payload kept in baton.job_faults.unreadable_payload")
			s.fail(cs[i], errUnreadable, 0)
			continue
		}
		readable = append(readable, cs[i])
	}
	s.startClaimed(readable)
	return len(rows), nil
}

// claimRows runs the claim statement: alone, or for a limited stage (a
// global or group concurrency, fair shares or a rate) after holding the
// queue's row in the same transaction, so that its counts of running jobs
// and its rate's bucket are not overtaken by another replica's claim.
func (s *stage) claimRows(ctx context.Context, p store.JobClaimParams) (rows []store.JobClaimRow, err error) {
	if !s.limited() {
		return store.New(s.w.pool).JobClaimBatch(ctx, p)
	}
	err = s.holdingQueue(ctx, int(p.MaxJobs), func(q *store.Queries, n int) (int, error) {
		p.MaxJobs = int32(n)
		if s.grouped() {
			var grouped []store.JobClaimGroupedRow
			grouped, err = q.JobClaimGrouped(ctx, store.JobClaimGroupedParams{
				CheckPayloads: p.CheckPayloads, MaxJobs: p.MaxJobs, QueueName: p.QueueName,
				GlobalConcurrency: p.GlobalConcurrency, GroupConcurrency: int32(s.cfg.GroupConcurrency), Fair: s.cfg.Fair,
				MaxAttempts: p.MaxAttempts, MaxJobLeaseMs: p.MaxJobLeaseMs, LeaseMs: p.LeaseMs, WorkerID: p.WorkerID,
			})
			rows = make([]store.JobClaimRow, len(grouped))
			for i, r := range grouped {
				rows[i] = store.JobClaimRow(r)
			}
		} else {
			rows, err = q.JobClaimBatch(ctx, p)
		}
		return len(rows), err
	})
	return rows, err
}

// queueLimits are a queue's own limits (baton.queues), zero where it has
// none.
type queueLimits struct {
	global int32
	rate   store.Rate
}

// limits returns the queue's own limits as last read.
func (s *stage) limits() queueLimits {
	if l := s.queueLimits.Load(); l != nil {
		return *l
	}
	return queueLimits{}
}

// grouped reports whether the stage claims through the queue's groups
// (JobClaimGrouped).
func (s *stage) grouped() bool { return s.cfg.GroupConcurrency > 0 || s.cfg.Fair }

// limited reports whether the stage's claims take turns on the queue's
// row: it has a global concurrency (its own or the queue's), a group limit,
// fair shares or a rate.
func (s *stage) limited() bool {
	l := s.limits()
	return s.cfg.GlobalConcurrency > 0 || l.global > 0 || s.grouped() || s.rate.Count > 0 || l.rate.Count > 0
}

// holdingQueue runs claim in a transaction that holds the queue's row first
// (QueueHoldForClaim): claims of a limited queue take turns. Under a rate,
// claim may take no more jobs than the bucket holds (n, at most max), and
// what it took is spent from the bucket in the same transaction; an empty
// bucket wakes the stage when its next claim is due.
func (s *stage) holdingQueue(ctx context.Context, max int, claim func(q *store.Queries, n int) (int, error)) error {
	return pgx.BeginFunc(ctx, s.w.pool, func(tx pgx.Tx) error {
		q := store.New(tx)
		h, err := q.QueueHoldForClaim(ctx, store.QueueHoldForClaimParams{
			Name: s.cfg.Queue, RateCount: s.rate.Count, RatePeriodMs: s.rate.PeriodMs(),
		})
		if err != nil {
			return err
		}
		s.queueLimits.Store(&queueLimits{global: h.GlobalConcurrency, rate: store.RateOf(h.RateCount, h.RatePeriodMs)})
		n := max
		if h.Tokens >= 0 {
			n = min(n, int(h.Tokens))
		}
		took := 0
		if n > 0 {
			if took, err = claim(q, n); err != nil {
				return err
			}
		}
		if h.Tokens < 0 {
			return nil
		}
		left := h.Tokens - float64(took)
		if took < max && left < 1 {
			rate := s.limits().rate
			if rate.Count == 0 {
				rate = s.rate
			}
			s.wakeIn(time.Duration((1 - left) * float64(rate.Period) / float64(rate.Count)))
		}
		if took == 0 {
			return nil
		}
		return q.QueueSpendTokens(ctx, store.QueueSpendTokensParams{Name: s.cfg.Queue, Tokens: left})
	})
}

// readLimit learns the queue's own limits, which may be set at run time:
// until then, claims of a stage without limits of its own do not take turns.
func (s *stage) readLimit(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	l, err := store.New(s.w.pool).QueueLimit(qctx, s.cfg.Queue)
	if err == nil {
		s.queueLimits.Store(&queueLimits{global: l.GlobalConcurrency, rate: store.RateOf(l.RateCount, l.RatePeriodMs)})
	}
}

// checkedClaimTimeout bounds a claim with payloads checked, which writes out
// each payload once more: a poison row's takes seconds to fail.
const checkedClaimTimeout = time.Minute

// errUnreadable fails a job whose payload cannot be read: a poison row. It
// ends dead at once, its payload moved aside (JobFail).
var errUnreadable = errors.New("poison row: its payload cannot be read (written out it is over PostgreSQL's 1 GB limit, or over 64 MiB, or the row is damaged); it is kept in baton.job_faults.unreadable_payload, and a retry puts it back")

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
