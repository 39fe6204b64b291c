package maintenance

import (
	"context"
	"log/slog"

	"github.com/baton-run/baton/internal/store"
)

// promote moves delayed and retrying jobs whose run_at has passed to
// available, a batch at a time. Claims take due jobs in those states
// directly, so this keeps the stored state honest rather than making jobs
// runnable; it also sends the hint that wakes their stages (JobPromote).
func promote(ctx context.Context, q *store.Queries, log *slog.Logger) {
	for {
		n, err := q.JobPromote(ctx, maintenanceBatch)
		if err != nil {
			warn(ctx, log, "promoting due jobs", err)
			return
		}
		if n < maintenanceBatch {
			return
		}
	}
}
