package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
)

// On SIGTERM, serve fails /readyz at once, keeps answering new connections
// for --shutdown-delay (what a load balancer takes to stop sending), then
// stops accepting and finishes the requests in flight: none is refused
// during the delay and none is cut. Before, the listener closed at once.
func TestServeDrainsOnSIGTERM(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	s := startServer(t, u, []string{"BATON_SHUTDOWN_DELAY=2s"}, "serve")

	// A submit in flight across the whole drain: its body arrives last.
	body, more := io.Pipe()
	slow := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, s.base+"/v1/queues/a/jobs", body)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			slow <- 0
			return
		}
		resp.Body.Close()
		slow <- resp.StatusCode
	}()
	_, err := more.Write([]byte(`{"payload": `))
	require.NoError(t, err)

	// New connections all along, as a load balancer that has not yet
	// noticed would open them.
	type sent struct {
		at     time.Time
		status int
		err    error
	}
	var (
		mu    sync.Mutex
		sends []sent
	)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	for range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				at := time.Now()
				resp, err := client.Get(s.base + "/v1/queues")
				r := sent{at: at, err: err}
				if err == nil {
					r.status = resp.StatusCode
					resp.Body.Close()
				}
				mu.Lock()
				sends = append(sends, r)
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		})
	}

	sigAt := time.Now()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool { return strings.Contains(s.stderr.String(), "draining: /readyz answers 503") }, 10*time.Second, 5*time.Millisecond)
	code, problem := getProblem(t, s.base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "draining", problem["code"])

	closed := regexp.MustCompile(`time=(\S+) level=INFO msg="no longer accepting connections`)
	var closedAt time.Time
	require.Eventually(t, func() bool {
		m := closed.FindStringSubmatch(s.stderr.String())
		if m != nil {
			closedAt, err = time.Parse(time.RFC3339Nano, m[1])
			require.NoError(t, err)
		}
		return m != nil
	}, 10*time.Second, 5*time.Millisecond, s.stderr.String())
	stop()
	wg.Wait()

	// The submit in flight finishes after the listener closed.
	_, err = more.Write([]byte(`{"n": 1}}`))
	require.NoError(t, err)
	require.NoError(t, more.Close())
	require.Equal(t, http.StatusCreated, <-slow)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not exit")
	}
	require.Zero(t, s.cmd.ProcessState.ExitCode(), s.stderr.String())
	require.Contains(t, s.stderr.String(), "stopped serving")
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'a'"))

	require.GreaterOrEqual(t, closedAt.Sub(sigAt), 1900*time.Millisecond, "the listener closed before the delay ended")
	whileDraining := 0
	for _, r := range sends {
		// A request begun just before the close may reach the server after
		// it (CI's load delayed one by 40 ms): those are not counted.
		if r.at.Before(closedAt.Add(-100 * time.Millisecond)) {
			require.NoError(t, r.err, "a request sent at %s, before the listener closed at %s", r.at, closedAt)
			require.Equal(t, http.StatusOK, r.status)
			if r.at.After(sigAt) {
				whileDraining++
			}
		}
	}
	require.Greater(t, whileDraining, 20, "requests sent while draining")
}
