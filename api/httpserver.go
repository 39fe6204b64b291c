package api

import (
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// NewHTTPServer returns a server for h with the limits every Baton listener
// has (the API's, and a worker's --metrics-addr): headers within 5 s and
// 64 KiB (431 past it), the whole request within 60 s, the response written
// within 60 s, and an idle keep-alive closed after 120 s. A client that
// declares a body and never sends it holds its connection for 60 s at most.
func NewHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// LimitConns lets at most n connections of ln be open at once. The rest
// wait in the kernel's backlog and cost the process no file descriptor, so
// a flood of idle or slow connections cannot exhaust the descriptors its
// handlers need (300 did, before: every exec handler then failed).
func LimitConns(ln net.Listener, n int) net.Listener { return netutil.LimitListener(ln, n) }
