package maintenance

import (
	"context"
	"log/slog"

	"github.com/baton-run/baton/internal/store"
)

// reap gives back the jobs whose lease expired (their worker died, froze or
// lost the database) to their queue, or to dead when their attempts are
// used up, a batch at a time, and returns how many. JobReap (queries/jobs.sql)
// is one guarded statement, safe from every replica at once, and decides
// crash isolation: a job that lost its lease beside others runs alone next
// (alone.go).
func reap(ctx context.Context, q *store.Queries, log *slog.Logger) int {
	reaped := 0
	for {
		rows, err := q.JobReap(ctx, maintenanceBatch)
		if err != nil {
			warn(ctx, log, "reaping expired leases", err)
			return reaped
		}
		for _, r := range rows {
			log.Warn("lease expired", "job_id", r.ID, "state", r.State)
		}
		reaped += len(rows)
		if len(rows) < maintenanceBatch {
			return reaped
		}
	}
}
