package batontest_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/batontest"
	"github.com/baton-run/baton/db"
)

// The assertions see what the test's own transaction submitted, before a
// commit; the pool does not.
func TestRequireSubmittedInsideTheTestsTransaction(t *testing.T) {
	t.Parallel()
	pool := batontest.New(t)
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck

	batontest.RequireNotSubmitted(t, tx, "emails")
	_, err = db.Submit(ctx, tx, db.NewJob{Queue: "emails"}, db.NewJob{Queue: "emails", Payload: []byte(`{"to":"ada@example.com"}`)})
	require.NoError(t, err)
	j := batontest.RequireSubmitted(t, tx, "emails")
	require.JSONEq(t, `{"to":"ada@example.com"}`, string(j.Payload), "the newest")
	require.Len(t, batontest.RequireSubmittedN(t, tx, "emails", 2), 2)
	batontest.RequireNotSubmitted(t, pool, "emails")

	// And they fail when they should, saying why.
	for want, f := range map[string]func(t testing.TB){
		`no job was submitted to queue "sms"`:             func(t testing.TB) { batontest.RequireSubmitted(t, tx, "sms") },
		`2 jobs were submitted to queue "emails", want 3`: func(t testing.TB) { batontest.RequireSubmittedN(t, tx, "emails", 3) },
		`was submitted to queue "emails"`:                 func(t testing.TB) { batontest.RequireNotSubmitted(t, tx, "emails") },
	} {
		require.Contains(t, failure(f), want)
	}
}

// WaitForState returns once the job is in the state, and fails at once,
// with the job's last error, when it ends in another.
func TestWaitForState(t *testing.T) {
	t.Parallel()
	pool := batontest.New(t)
	ctx := context.Background()
	ids, err := db.Submit(ctx, pool, db.NewJob{Queue: "a"}, db.NewJob{Queue: "a"})
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE baton.jobs SET state = 'succeeded', finished_at = now() WHERE id = $1;`, ids[0])
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE baton.jobs SET state = 'dead', finished_at = now(), last_error = 'card declined' WHERE id = $1`, ids[1])
	require.NoError(t, err)

	require.Equal(t, db.StateSucceeded, batontest.WaitForState(t, pool, ids[0], db.StateSucceeded).State)
	require.Contains(t, failure(func(t testing.TB) { batontest.WaitForState(t, pool, ids[1], db.StateSucceeded) }),
		fmt.Sprintf("job %d (dead), waiting for succeeded: is dead, not succeeded: card declined", ids[1]))
	require.Contains(t, failure(func(t testing.TB) { batontest.WaitForState(t, pool, 404, db.StateSucceeded) }), "not found")
	require.Equal(t, ids[1], batontest.WaitForSubmitted(t, pool, "a").ID)
}

// failure runs f with a testing.TB that records its failure, and returns it.
func failure(f func(t testing.TB)) string {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.msg.String()
}

type recorder struct {
	testing.TB
	msg strings.Builder
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	fmt.Fprintf(&r.msg, format, args...)
	runtime.Goexit()
}
