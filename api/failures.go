package api

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// failureLimit bounds wrong credentials (bearer tokens and dashboard
// sign-ins) per client address: a burst of failureBurst, then one more every
// failureEvery. Past that, each wrong credential from the address is
// answered 429 with Retry-After until its allowance refills; a right one
// still gets in (a token is at least MinTokenLength characters, so guessing
// one is hopeless either way: the limit keeps guessers out of the log and
// off the database, and tells a misconfigured client). Each replica counts
// on its own; behind a trusted proxy (Config.TrustedProxies) the address is
// the client's it forwarded for.
type failureLimit struct {
	mu      sync.Mutex
	clients map[string]*rate.Limiter
}

const (
	failureBurst = 10
	failureEvery = 6 * time.Second
	// maxTracked bounds the addresses remembered (about 100 bytes each).
	maxTracked = 10_000
)

// wait is how long addr must wait before its credentials are looked at
// again; 0 when it may send them now.
func (f *failureLimit) wait(addr string) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.clients[addr]
	if l == nil {
		return 0
	}
	if tokens := l.Tokens(); tokens < 1 {
		return time.Duration((1 - tokens) * float64(failureEvery))
	}
	return 0
}

// fail counts one wrong credential from addr.
func (f *failureLimit) fail(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.clients[addr]
	if l == nil {
		if f.clients == nil {
			f.clients = map[string]*rate.Limiter{}
		}
		f.forget()
		l = rate.NewLimiter(rate.Every(failureEvery), failureBurst)
		f.clients[addr] = l
	}
	l.Allow()
}

// forget makes room for one more address: addresses whose allowance has
// refilled go first, then any.
func (f *failureLimit) forget() {
	if len(f.clients) < maxTracked {
		return
	}
	for a, l := range f.clients {
		if l.Tokens() >= failureBurst {
			delete(f.clients, a)
		}
	}
	for a := range f.clients {
		if len(f.clients) < maxTracked {
			break
		}
		delete(f.clients, a)
	}
}

// clientAddr is the address failures are counted under: the client's IP
// (Server.client: behind a trusted proxy, the one it forwarded for), or its
// /64 for IPv6 (one host usually holds a whole /64).
func (s *Server) clientAddr(r *http.Request) string {
	ip, _ := s.client(r)
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	if !ip.IsValid() {
		return r.RemoteAddr
	}
	return ip.String()
}

// retryAfter writes a wait as Retry-After's whole seconds, rounded up.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}
