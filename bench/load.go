package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baton-run/baton/internal/store"
)

// commitRate measures durable one-row UPDATE commits per second with
// clients connections for d.
func commitRate(ctx context.Context, pool *pgxpool.Pool, clients int, d time.Duration) (float64, error) {
	for _, sql := range []string{
		"CREATE TABLE bench_tick (id int PRIMARY KEY, v bigint NOT NULL DEFAULT 0)",
		"INSERT INTO bench_tick SELECT g, 0 FROM generate_series(1, 1000) g",
		"CHECKPOINT",
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			return 0, fmt.Errorf("bench: preparing the commit-rate table: %w", err)
		}
	}
	var commits atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				if _, err := pool.Exec(ctx, "UPDATE bench_tick SET v = v + 1 WHERE id = $1", (c*7919+i)%1000+1); err != nil {
					errs <- err
					return
				}
				commits.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(commits.Load()) / d.Seconds(), nil
}

// offer submits n jobs to queue "offered" at rate per second, open loop: at
// each moment it submits the jobs that are due by then, so a trickle goes in
// one job per statement and a high rate in small batches, and a slow submit
// is caught up rather than slowing the offered load.
func offer(ctx context.Context, pool *pgxpool.Pool, rate float64, n int) error {
	start := time.Now()
	job := store.NewJob{Queue: "offered", Payload: []byte(`{"n":1}`)}
	for sent := 0; sent < n; {
		due := min(n, int(rate*time.Since(start).Seconds())+1)
		if due <= sent {
			next := start.Add(time.Duration(float64(sent) / rate * float64(time.Second)))
			time.Sleep(time.Until(next))
			continue
		}
		batch := make([]store.NewJob, due-sent)
		for i := range batch {
			batch[i] = job
		}
		if _, err := store.Submit(ctx, pool, batch...); err != nil {
			return err
		}
		sent = due
	}
	return nil
}

// restSubmit serves the API on loopback in this process and submits n jobs
// through POST /v1/queues/rest/jobs/batch, 1,000 per request from 4 clients.
func restSubmit(ctx context.Context, handler http.Handler, n int) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	const perRequest, clients = 1000, 4
	var body bytes.Buffer
	body.WriteString(`{"jobs": [`)
	for i := range perRequest {
		if i > 0 {
			body.WriteByte(',')
		}
		body.WriteString(`{"payload": {"n": 1}}`)
	}
	body.WriteString(`]}`)
	requests := make(chan struct{})
	errs := make(chan error, clients)
	url := "http://" + ln.Addr().String() + "/v1/queues/rest/jobs/batch"
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for range requests {
				resp, err := http.Post(url, "application/json", bytes.NewReader(body.Bytes()))
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					errs <- fmt.Errorf("bench: REST batch submit answered %s", resp.Status)
					return
				}
			}
		})
	}
	sent := 0
loop:
	for ; sent < n; sent += perRequest {
		select {
		case requests <- struct{}{}:
		case err := <-errs:
			close(requests)
			wg.Wait()
			return 0, err
		case <-ctx.Done():
			break loop
		}
	}
	close(requests)
	wg.Wait()
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	return float64(sent) / time.Since(start).Seconds(), nil
}
