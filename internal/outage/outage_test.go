package outage

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// Two and a half minutes of failures from three parts of a process, 40 a
// second, make four lines: lost, still lost twice (with the count), back.
// Other records pass through, the database's own refusals among them.
func TestAnOutageIsAFewLines(t *testing.T) {
	var out bytes.Buffer
	tr := New(slog.NewTextHandler(&out, nil))
	clock := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	tr.now = func() time.Time { return clock }
	log := tr.Logger()
	parts := []*slog.Logger{log.With("stage", "a"), log.With("stage", "b"), log.WithGroup("maintenance")}
	lost := fmt.Errorf("claiming: %w", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"})

	tr.Up() // not down: nothing to say
	log.Info("serving")
	for i := range 150 * 40 {
		parts[i%3].Warn("claiming jobs", "error", lost)
		if i%40 == 0 {
			log.Warn("a job failed", "error", errors.New("exit status 1"))
		}
		clock = clock.Add(25 * time.Millisecond)
	}
	tr.Up()
	tr.Up()

	var outage []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if strings.Contains(line, "database") {
			outage = append(outage, line)
		}
	}
	require.Len(t, outage, 4, out.String())
	require.Contains(t, outage[0], `level=WARN msg="the database is unavailable; retrying (a line a minute until it is back)"`)
	require.Contains(t, outage[0], `while="claiming jobs"`)
	require.Contains(t, outage[0], "terminating connection due to administrator command")
	require.Contains(t, outage[1], `msg="the database is still unavailable"`)
	require.Contains(t, outage[1], "failed_tries=2400 for=1m0s")
	require.Contains(t, outage[2], "failed_tries=2400 for=2m0s")
	require.Contains(t, outage[3], `level=INFO msg="the database is back" after=2m30s failed_tries=6000`)
	require.Equal(t, 150, strings.Count(out.String(), `msg="a job failed"`), "other warnings pass through")
	require.Contains(t, out.String(), "msg=serving")
}
