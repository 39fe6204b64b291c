package worker

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/baton-run/baton/internal/store"
)

// noteOverrides applies the timeouts and leases that claimed jobs were
// submitted with (milliseconds; nil for none), capped by the stage's
// max_job_timeout and max_job_lease. (The claim set each lease in the
// database, capped the same way.) Before any of them starts, the claim of
// each capped job is written to its history with a note saying so: one
// statement for them all, fenced by their lease tokens.
func (s *stage) noteOverrides(ctx context.Context, cs []*claimed, timeouts, leases []*int32) {
	var ids, tokens []int64
	var notes []string
	for i, c := range cs {
		var capped []string
		c.timeout, capped = own("timeout", timeouts[i], s.cfg.MaxJobTimeout.D(), "max_job_timeout", capped)
		c.lease, capped = own("lease", leases[i], s.cfg.MaxJobLease.D(), "max_job_lease", capped)
		if len(capped) > 0 {
			ids, tokens = append(ids, c.job.ID), append(tokens, c.token)
			notes = append(notes, strings.Join(capped, "; "))
		}
	}
	if len(ids) == 0 {
		return
	}
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbTimeout)
	defer cancel()
	if err := store.New(s.w.pool).JobNoteClaims(qctx, store.JobNoteClaimsParams{Ids: ids, LeaseTokens: tokens, Notes: notes}); err != nil {
		s.log.Warn("noting capped timeouts or leases in the jobs' history", "error", store.MapError(err), "jobs", len(ids))
	}
}

// own is a job's own timeout or lease (0: none), capped at limit; a cap
// adds its note to capped.
func own(name string, ms *int32, limit time.Duration, limitName string, capped []string) (time.Duration, []string) {
	if ms == nil {
		return 0, capped
	}
	d := time.Duration(*ms) * time.Millisecond
	if d <= limit {
		return d, capped
	}
	return limit, append(capped, fmt.Sprintf("%s %s capped to the stage's %s %s", name, d, limitName, limit))
}
