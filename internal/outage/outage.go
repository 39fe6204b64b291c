// Package outage keeps a database outage to a few log lines. Every part of a
// process that talks to the database (each stage's claims, heartbeats,
// maintenance, the API's requests) logs its own failures, so an outage
// logged as it happens is dozens of lines a second, each saying the same.
// Through a Tracker's handler, the first failure that says the database is
// unavailable (store.ErrUnavailable) becomes one line, the next ones a line a
// minute with how many there were, and Tracker.Up, called when a connection
// succeeds again, one line saying it is back. Everything else passes through.
package outage

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/baton-run/baton/internal/store"
)

// Every is how often a continuing outage is logged.
const Every = time.Minute

// Tracker is one process's view of the database: up, or down since when.
type Tracker struct {
	next slog.Handler
	now  func() time.Time

	mu       sync.Mutex
	down     bool
	since    time.Time // when it was lost
	told     time.Time // the last line about it
	failures int       // failed tries since that line
	total    int       // failed tries since it was lost
}

// New returns a Tracker whose lines, and every record that is not about an
// outage, go to next.
func New(next slog.Handler) *Tracker {
	return &Tracker{next: next, now: time.Now}
}

// Logger is a logger through the tracker.
func (t *Tracker) Logger() *slog.Logger { return slog.New(handler{t: t, next: t.next}) }

// Up says the database answered: a connection succeeded. After an outage, it
// logs that the database is back, after how long and how many failed tries.
func (t *Tracker) Up() {
	t.mu.Lock()
	if !t.down {
		t.mu.Unlock()
		return
	}
	t.down = false
	lasted, total := t.now().Sub(t.since), t.total
	t.mu.Unlock()
	t.line(slog.LevelInfo, "the database is back", "after", lasted.Round(time.Millisecond).String(), "failed_tries", total)
}

// failed counts one failure of an outage and says whether it is to be
// logged, and as what.
func (t *Tracker) failed() (msg string, tries int, lasted time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.total++
	if !t.down {
		t.down, t.since, t.told, t.failures = true, now, now, 0
		return "the database is unavailable; retrying (a line a minute until it is back)", 1, 0
	}
	t.failures++
	if now.Sub(t.told) < Every {
		return "", 0, 0
	}
	tries = t.failures
	t.told, t.failures = now, 0
	return "the database is still unavailable", tries, now.Sub(t.since)
}

func (t *Tracker) line(level slog.Level, msg string, args ...any) {
	r := slog.NewRecord(t.now(), level, msg, 0)
	r.Add(args...)
	_ = t.next.Handle(context.Background(), r)
}

// handler passes records through, but for a warning or error whose "error"
// says the database is unavailable.
type handler struct {
	t    *Tracker
	next slog.Handler
}

func (h handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h handler) WithAttrs(as []slog.Attr) slog.Handler {
	return handler{t: h.t, next: h.next.WithAttrs(as)}
}

func (h handler) WithGroup(name string) slog.Handler {
	return handler{t: h.t, next: h.next.WithGroup(name)}
}

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	err := unavailable(r)
	if err == nil {
		return h.next.Handle(ctx, r)
	}
	msg, tries, lasted := h.t.failed()
	if msg == "" {
		return nil
	}
	out := slog.NewRecord(r.Time, slog.LevelWarn, msg, r.PC)
	out.AddAttrs(slog.String("error", err.Error()), slog.String("while", r.Message))
	if lasted > 0 {
		out.AddAttrs(slog.Int("failed_tries", tries), slog.String("for", lasted.Round(time.Second).String()))
	}
	return h.next.Handle(ctx, out)
}

// unavailable is the record's "error" when it is a warning or an error about
// a database that cannot be reached or will not serve; nil otherwise.
func unavailable(r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return nil
	}
	var found error
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != "error" {
			return true
		}
		if err, ok := a.Value.Any().(error); ok && errors.Is(store.MapError(err), store.ErrUnavailable) {
			found = err
		}
		return false
	})
	return found
}
