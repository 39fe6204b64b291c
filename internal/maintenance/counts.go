package maintenance

import (
	"context"
	"log/slog"

	"github.com/baton-run/baton/internal/store"
)

// foldCounts folds the per-statement count deltas that the triggers on
// baton.jobs append into baton.job_counts (migration 3). Readers add the
// two, so the counts are exact before and after; folding keeps the deltas
// short.
func foldCounts(ctx context.Context, q *store.Queries, log *slog.Logger) {
	_, err := q.JobCountsFold(ctx)
	warn(ctx, log, "folding job counts", err)
}
