package maintenance

import (
	"context"
	"log/slog"

	"github.com/baton-run/baton/internal/store"
)

// pruneExpired deletes what has outlived its use: idempotency keys older
// than 24 hours (a retry after that creates a new job) and dashboard
// sessions that ended (expired, logged out, or their token removed), and
// fair-share rows of groups whose turn the clock has passed (a group that
// comes back starts at the clock with or without its row).
func pruneExpired(ctx context.Context, q *store.Queries, log *slog.Logger) {
	_, err := q.IdempotencyPrune(ctx)
	warn(ctx, log, "pruning idempotency keys", err)
	_, err = q.SessionPrune(ctx)
	warn(ctx, log, "pruning ended dashboard sessions", err)
	_, err = q.QueueGroupsPrune(ctx)
	warn(ctx, log, "pruning idle groups' fair-share rows", err)
}
