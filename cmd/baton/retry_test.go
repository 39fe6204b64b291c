package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
)

// baton retry --queue re-drives the dead jobs its flags choose, counts them
// first with --dry-run, and bad flags exit 2 having changed nothing.
func TestRetryAQueueFromTheCommandLine(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	_, err := pool.Exec(context.Background(), `INSERT INTO baton.queues (name) VALUES ('a');
		INSERT INTO baton.jobs (queue, state, payload, finished_at, last_error)
		SELECT 'a', 'dead', '{}', now(), CASE WHEN n % 2 = 0 THEN 'upstream down' ELSE 'bad input' END
		FROM generate_series(1, 10) n`)
	require.NoError(t, err)

	for _, args := range [][]string{{"--queue", "a", "--state", "succeeded"}, {"--queue", "a", "--rate", "fast"},
		{"--queue", "a", "--rate", "0/s"}, {"--queue", "a", "--since", "-1h"}, {"--state", "dead"}, {"--queue", "A"}} {
		r := baton(t, u, "", append([]string{"retry"}, args...)...)
		require.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
	}
	require.Equal(t, 10, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE state = 'dead'"))

	r := baton(t, u, "", "retry", "--queue", "a", "--error-like", "UPSTREAM", "--dry-run")
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, "matched 5 dead jobs of a, skipped 0 (dry run: none re-driven)\n", r.stdout)
	require.Equal(t, 10, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE state = 'dead'"))

	r = baton(t, u, "", "retry", "--queue", "a", "--error-like", "upstream", "--since", "1h", "--rate", "1000/s")
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, "matched 5 dead jobs of a, retried 5, skipped 0\n", r.stdout)
	require.Equal(t, 5, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE state = 'available' AND last_error = 'upstream down'"))
}
