package worker

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baton-run/baton/internal/store"
)

// listen wakes stages when a hint on the baton_jobs channel names their
// queue (queries/notify.sql), so a job submitted, retried or resumed
// elsewhere starts without waiting for the next poll. It is only a hint: a lost notification (say, while reconnecting) costs
// one poll interval, never a job. It runs on a connection of its own, outside
// the pool, and reconnects with backoff until ctx ends.
func (w *Worker) listen(ctx context.Context) {
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		conn, err := pgx.ConnectConfig(ctx, w.pool.Config().ConnConfig.Copy())
		if err == nil {
			err = store.New(conn).Listen(ctx)
		}
		if err == nil {
			delay = 100 * time.Millisecond
			w.wakeAll() // anything submitted while we were not listening
			err = w.dispatch(ctx, conn)
		}
		if conn != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
		if ctx.Err() != nil {
			return
		}
		w.log.Warn("listening for wake-up hints failed; polling meanwhile", "error", store.MapError(err), "retry_in", delay)
		select {
		case <-ctx.Done():
		case <-time.After(delay):
			delay = min(2*delay, maxRetryWait)
		}
	}
}

func (w *Worker) dispatch(ctx context.Context, conn *pgx.Conn) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		for _, q := range strings.Split(n.Payload, ",") {
			q, later := strings.CutSuffix(q, "@")    // some of its jobs are due later
			q, isolated := strings.CutSuffix(q, "!") // some must run alone (alone.go)
			if s := w.stages[q]; s != nil {
				if later {
					s.lookAhead.Store(true)
				}
				if isolated {
					s.lookIsolated.Store(true)
				}
				signal(s.wake)
			}
		}
	}
}

func (w *Worker) wakeAll() {
	for _, s := range w.stages {
		s.lookAhead.Store(true)
		signal(s.wake)
	}
}
