package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/baton-run/baton/internal/store"
)

// maxCompleteBatch bounds the jobs one completion statement commits.
const maxCompleteBatch = 1000

// done is a finished handler's success, waiting to be committed.
type done struct {
	claimed
	result json.RawMessage
	ran    time.Duration // how long the handler ran
	// nextTrace is the handler run's trace context, for the next stage's job.
	nextTrace string
}

// completer commits a stage's successes in groups: it takes every success
// that is waiting, commits them in one fenced statement, and repeats. At a
// trickle that is one job at a time with no added delay; under load the
// successes that finish while a commit is in flight share the next one.
// A stale lease token drops only that job's part of the statement.
func (s *stage) completer(in <-chan *done) {
	for first := range in {
		batch := []*done{first}
	collect:
		for len(batch) < maxCompleteBatch {
			select {
			case d, ok := <-in:
				if !ok {
					break collect
				}
				batch = append(batch, d)
			default:
				break collect
			}
		}
		s.w.stats.completeBatches.Add(1)
		s.commit(batch)
	}
}

func (s *stage) commit(batch []*done) {
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	p := store.JobCompleteManyParams{
		Ids: make([]int64, len(batch)), LeaseTokens: make([]int64, len(batch)),
		Results: make([]string, len(batch)), NextQueues: make([]string, len(batch)),
		TraceParents: make([]string, len(batch)), Direct: make([]bool, len(batch)), RunUs: make([]int64, len(batch)),
		WorkerID: s.w.cfg.ID, FanOut: s.cfg.FanOut, JoinStage: s.cfg.Join,
	}
	for i, d := range batch {
		p.Ids[i], p.LeaseTokens[i], p.Results[i], p.NextQueues[i] = d.job.ID, d.token, string(d.result), s.cfg.Next
		p.TraceParents[i], p.RunUs[i] = d.nextTrace, d.ran.Microseconds()
	}
	// When this process also works the next stage and it has free slots, the
	// hand-off creates the next jobs already claimed by this worker (one job
	// for one: not for a fan-out or a join).
	next, direct := s.w.stages[s.cfg.Next], 0
	if next != nil && !s.cfg.FanOut && !s.cfg.Join {
		direct = next.reserve(len(batch))
		p.NextLeaseMs, p.NextMaxAttempts = next.cfg.Lease.D().Milliseconds(), int32(next.cfg.MaxAttempts)
		for i := range direct {
			p.Direct[i] = true
		}
	}
	began := time.Now()
	rows, err := retryDB(ctx, func() ([]store.JobCompleteManyRow, error) {
		if s.cfg.Join {
			return s.completeJoining(ctx, p, batch)
		}
		return store.New(s.w.pool).JobCompleteManyBatch(ctx, p)
	})
	picked := time.Since(began)
	s.metrics.completionSeconds.Observe(picked.Seconds())
	if err != nil && len(batch) > 1 && !errors.Is(err, store.ErrUnavailable) {
		// Something in the group failed the statement: commit the rest one
		// by one so one bad job cannot hold back the others.
		if next != nil {
			next.unreserve(direct)
		}
		for _, d := range batch {
			s.commit([]*done{d})
		}
		return
	}
	// A group can hold one job twice (a zombie's run and the current one):
	// only the (job, token) pairs returned committed.
	// (The map holds each row's index, not the row: a copy of every row
	// was a tenth of the worker's allocations.)
	committed := make(map[run]int, len(rows))
	for i, r := range rows {
		committed[run{r.ID, r.LeaseToken}] = i
	}
	started := 0
	for _, d := range batch {
		i, ok := committed[d.run()]
		switch {
		case store.Refused(err):
			// The database refused this job's outcome (a rule of the table
			// refusing its next job, say): that is the attempt's failure,
			// recorded under the same fence and retried with the stage's
			// backoff, rather than a wait for the lease to expire.
			s.fail(d.claimed, fmt.Errorf("recording the result failed: %w", err), d.ran)
		case err != nil:
			// The statement could not run (connection lost, shutdown): the
			// job is not at fault, and its lease brings it back.
			s.jobLog(d.job).Error("recording success failed; the job will run again when its lease expires", "error", err)
		case !ok:
			s.w.stats.leasesLost.Add(1)
			s.metrics.fenced.Inc()
			s.jobLog(d.job).Warn("completion fenced: lease lost, nothing committed")
		default:
			s.w.stats.succeeded.Add(1)
			s.metrics.succeeded.Inc()
			if r := &rows[i]; r.NextClaimed {
				started++
				next.start(claimed{
					job: &Job{
						ID: r.NextID, Queue: next.cfg.Queue, Payload: r.NextPayload, // as stored: jsonb's bytes
						Attempt: 1, MaxAttempts: next.cfg.MaxAttempts, Priority: d.job.Priority, ParentID: &d.job.ID,
						CreatedAt: r.NextCreatedAt, Tags: d.job.Tags, Group: d.job.Group,
					},
					token: 1, traceParent: d.nextTrace, // picked up in the commit that created it
					pickup: picked,
				}, true)
			}
		}
		s.settle(d.claimed) // its handler's goroutine did not wait for this commit
		s.handlers.Done()
	}
	if next != nil {
		next.unreserve(direct - started)
		if len(rows) > started {
			signal(next.wake) // jobs handed off unclaimed
		}
	}
}

// completeJoining completes a join stage's jobs in one transaction: the
// completion statement, then the joined job of each fan-out it finished
// (JobJoin). A second statement because it must see the siblings that other
// transactions completed before this one took the fan-out's lock.
func (s *stage) completeJoining(ctx context.Context, p store.JobCompleteManyParams, batch []*done) (rows []store.JobCompleteManyRow, err error) {
	parentOf := make(map[int64]*int64, len(batch))
	for _, d := range batch {
		parentOf[d.job.ID] = d.job.ParentID
	}
	err = store.WithTx(ctx, s.w.pool, func(q *store.Queries) error {
		if rows, err = q.JobCompleteManyBatch(ctx, p); err != nil {
			return err
		}
		var parents []int64
		for _, r := range rows {
			if parent := parentOf[r.ID]; r.JoinReady && parent != nil && !slices.Contains(parents, *parent) {
				parents = append(parents, *parent)
			}
		}
		if len(parents) == 0 {
			return nil
		}
		joined, err := q.JobJoin(ctx, store.JobJoinParams{ParentIds: parents, NextQueue: s.cfg.Next})
		for _, j := range joined {
			s.log.Info("joined a fan-out", "parent_id", j.ParentID, "job_id", j.ID, "queue", s.cfg.Next)
		}
		return err
	})
	return rows, err
}
