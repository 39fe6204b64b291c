package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
)

// baton submit --unique-key prints the id of the job that holds the key when
// it submits nothing, and says so on stderr; bad unique options exit 2.
func TestSubmitWithAUniqueKey(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	first := baton(t, u, "", "submit", "orders", `{"n": 1}`, "--unique-key", "order-7")
	require.Zero(t, first.code, first.stderr)
	require.Empty(t, first.stderr)
	second := baton(t, u, "", "submit", "orders", `{"n": 2}`, "--unique-key", "order-7", "--unique-states", "available,running")
	require.Zero(t, second.code, second.stderr)
	require.Equal(t, first.stdout, second.stdout, "the id of the job that holds the key")
	require.Contains(t, second.stderr, `holds unique key "order-7": nothing submitted`)
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.jobs"))

	for _, args := range [][]string{{"--unique-for", "1h"}, {"--unique-key", "k", "--unique-for", "10ms"},
		{"--unique-key", "k", "--unique-states", "done"}, {"--unique-key", strings.Repeat("k", 256)}} {
		r := baton(t, u, "", append([]string{"submit", "orders", "{}"}, args...)...)
		require.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
	}
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.jobs"))
}
