package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
)

// A 30 s database outage, as serve and a worker see it (a proxy between
// them and PostgreSQL drops every connection and refuses new ones): each
// logs one line when it loses the database and one when it is back, at most
// five in all, and the jobs submitted meanwhile run within seconds of its
// return. Before, a worker logged about 40 lines a second.
func TestAnOutageIsQuietAndWorkResumes(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	proxy := newCutProxy(t, u)
	config := writeFile(t, "cat.yaml", "poll_interval: 50ms\nstages:\n  - queue: a\n    handler: {exec: [cat]}\n    next: b\n  - queue: b\n    handler: {exec: [cat]}\n")
	s := startServer(t, proxy.url, nil, "serve")
	cmd := exec.Command(batonBin, "worker", "--config", config, "--id", "quiet")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+proxy.url)
	w := startProc(t, cmd)
	require.Zero(t, baton(t, u, "", "submit", "a", "{}").code)
	succeeded := func(n int) func() bool {
		return func() bool { return count(t, pool, "SELECT count(*) FROM baton.jobs WHERE state = 'succeeded'") == n }
	}
	require.Eventually(t, succeeded(2), 20*time.Second, 10*time.Millisecond, w.stderr.String())

	before := map[*workerProc]int{}
	serveProc := &workerProc{stderr: s.stderr}
	for _, p := range []*workerProc{serveProc, w} {
		before[p] = strings.Count(p.stderr.String(), "\n")
	}
	proxy.cut(true)
	end := time.Now().Add(30 * time.Second)
	for time.Now().Before(end) {
		// Jobs arrive (straight into the database), and clients call the API.
		require.Zero(t, baton(t, u, "", "submit", "a", "{}").code)
		code, _ := getStatus(s.base + "/v1/queues")
		require.Equal(t, http.StatusServiceUnavailable, code, s.stderr.String())
		time.Sleep(time.Second)
	}
	submitted := count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'a'")
	back := time.Now()
	proxy.cut(false)
	require.Eventually(t, succeeded(2*submitted), 20*time.Second, 10*time.Millisecond, w.stderr.String())
	t.Logf("%d jobs submitted during the outage ran %s after it ended", submitted-1, time.Since(back).Round(time.Millisecond))
	require.Eventually(t, func() bool { return strings.Contains(s.stderr.String(), "the database is back") }, 10*time.Second, 10*time.Millisecond)

	for name, p := range map[string]*workerProc{"serve": serveProc, "worker": w} {
		lines := strings.Split(p.stderr.String(), "\n")[before[p]:]
		var said []string
		for _, l := range lines {
			if l != "" && !strings.Contains(l, "msg=request ") { // serve's access log: a line per request
				said = append(said, l)
			}
		}
		require.LessOrEqual(t, len(said), 5, "%s said:\n%s", name, strings.Join(said, "\n"))
		out := strings.Join(said, "\n")
		t.Logf("%s said, from the outage on:\n%s", name, out)
		require.Equal(t, 1, strings.Count(out, "the database is unavailable"), "%s said:\n%s", name, out)
		require.Equal(t, 1, strings.Count(out, "the database is back"), "%s said:\n%s", name, out)
	}
}

func getStatus(u string) (int, error) {
	resp, err := http.Get(u)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// cutProxy forwards TCP connections to a database; cut drops every
// connection and refuses new ones (it accepts and closes them) until it is
// called again with false.
type cutProxy struct {
	url string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
}

func newCutProxy(t *testing.T, databaseURL string) *cutProxy {
	t.Helper()
	target, err := url.Parse(databaseURL)
	require.NoError(t, err)
	if target.Port() == "" {
		t.Skip("the test database is not reached over TCP:", target.Host)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutProxy{conns: map[net.Conn]bool{}}
	proxied := *target
	proxied.Host = ln.Addr().String()
	p.url = proxied.String()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		ln.Close()
		p.cut(true)
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.down {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns[c] = true
			p.mu.Unlock()
			wg.Go(func() {
				var d net.Dialer
				up, err := d.DialContext(ctx, "tcp", target.Host)
				if err != nil {
					c.Close()
					return
				}
				p.mu.Lock()
				p.conns[up] = true
				p.mu.Unlock()
				var pipes sync.WaitGroup
				pipes.Go(func() { _, _ = io.Copy(up, c); up.Close() })
				pipes.Go(func() { _, _ = io.Copy(c, up); c.Close() })
				pipes.Wait()
				p.mu.Lock()
				delete(p.conns, c)
				delete(p.conns, up)
				p.mu.Unlock()
			})
		}
	})
	return p
}

func (p *cutProxy) cut(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
	}
}
