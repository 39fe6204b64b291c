package main

import (
	"strings"
	"testing"
	"time"

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

// baton submit --tag, --timeout and --lease go with the job; baton report
// --tag counts only the jobs with the tag. Bad values exit 2.
func TestSubmitWithTagsAndReportByTag(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	tagged := baton(t, u, "", "submit", "a", `{}`, "--tag", "customer-42", "--tag", "rush", "--timeout", "5s", "--lease", "2s")
	require.Zero(t, tagged.code, tagged.stderr)
	require.Zero(t, baton(t, u, "", "submit", "a", `{}`).code)
	id := strings.TrimSpace(tagged.stdout)
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE id = $1 AND tags = '{customer-42,rush}' AND timeout_ms = 5000 AND lease_ms = 2000", id))
	status := baton(t, u, "", "status", id)
	require.Contains(t, status.stdout, `"timeout": "5s"`)

	config := writeFile(t, "p.yaml", "poll_interval: 50ms\nstages:\n  - queue: a\n    handler: {exec: [\"sh\", \"-c\", \"echo 'no luck' >&2; exit 1\"]}\n    max_attempts: 1\n")
	startWorker(t, u, config, "w")
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM baton.jobs WHERE state = 'dead'") == 2
	}, 30*time.Second, 20*time.Millisecond)

	all := baton(t, u, "", "report", "failures", "--format", "csv")
	require.Zero(t, all.code, all.stderr)
	require.Contains(t, all.stdout, ",2,2,2,", "two attempts, two jobs, two deaths")
	one := baton(t, u, "", "report", "failures", "--format", "csv", "--tag", "rush")
	require.Zero(t, one.code, one.stderr)
	require.Contains(t, one.stdout, ",1,1,1,", "only the tagged job")
	none := baton(t, u, "", "report", "attempts_per_job", "--format", "csv", "--tag", "nobody")
	require.Zero(t, none.code, none.stderr)
	require.Equal(t, 1, strings.Count(none.stdout, "\n"), "the header alone: %s", none.stdout)

	for _, args := range [][]string{{"submit", "a", "{}", "--timeout", "0s"}, {"submit", "a", "{}", "--lease", "-1s"},
		{"submit", "a", "{}", "--timeout", "25h"}, {"submit", "a", "{}", "--tag", ""}, {"submit", "a", "{}", "--tag", strings.Repeat("t", 65)},
		{"submit", "a", "{}", "--tag", "x", "--tag", "x"}, {"report", "--tag", strings.Repeat("t", 65)}} {
		r := baton(t, u, "", args...)
		require.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
	}
	require.Equal(t, 2, count(t, pool, "SELECT count(*) FROM baton.jobs"))
}

// baton submit into a full queue (its max_backlog reached) exits 1 with one
// line, and submits nothing.
func TestSubmitIntoAFullQueueSaysSoInOneLine(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	r := baton(t, u, "", "queue", "set", "mail", "--max-backlog", "1")
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "max backlog 1")
	require.Zero(t, baton(t, u, "", "submit", "mail", "{}").code)
	r = baton(t, u, "", "submit", "mail", "{}")
	require.Equal(t, 1, r.code, r.stderr)
	require.Equal(t, 1, strings.Count(r.stderr, "\n"), r.stderr)
	require.Contains(t, r.stderr, "queue mail is full: 1 jobs waiting, at most 1")
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.jobs"))
	r = baton(t, u, "", "queue", "set", "mail", "--max-backlog", "lots")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "--max-backlog")
}

// baton submit --group names the job's group; baton status shows it; a
// group past 128 characters is refused in one line.
func TestSubmitWithAGroup(t *testing.T) {
	t.Parallel()
	_, u := dbtest.NewWithURL(t)
	r := baton(t, u, "", "submit", "mail", "{}", "--group", "customer-42")
	require.Zero(t, r.code, r.stderr)
	s := baton(t, u, "", "status", strings.TrimSpace(r.stdout))
	require.Zero(t, s.code, s.stderr)
	require.Contains(t, s.stdout, `"group": "customer-42"`)
	r = baton(t, u, "", "submit", "mail", "{}", "--group", strings.Repeat("g", 129))
	require.Equal(t, 2, r.code)
	require.Equal(t, 1, strings.Count(r.stderr, "\n"), r.stderr)
	require.Contains(t, r.stderr, "group")
}
