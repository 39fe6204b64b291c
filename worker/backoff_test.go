package worker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackoffDoublesWithJitterUpToTheCap(t *testing.T) {
	t.Parallel()
	for attempt := 1; attempt <= 100; attempt++ {
		want := time.Second
		for i := 1; i < attempt && want < time.Minute; i++ {
			want *= 2
		}
		want = min(want, time.Minute)
		for range 20 {
			d := backoff(attempt, time.Second, time.Minute)
			require.GreaterOrEqual(t, d, want/2, "attempt %d", attempt)
			require.LessOrEqual(t, d, want, "attempt %d", attempt)
		}
	}
}
