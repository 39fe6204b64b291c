package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// allocatedBy runs fn and returns the bytes the process allocated meanwhile.
func allocatedBy(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Whatever a handler prints, the worker keeps at most the caps in memory:
// a command printing 100 MB is stopped at the 16 MiB stdout cap (before,
// os/exec copied around the cap through bytes.Buffer's ReadFrom, and 100 MB
// of output took the worker to 476 MB RSS), and a flood on stderr keeps
// only its last 4 KiB. These measure the process's allocations, so they run
// alone (not parallel).
func TestHandlerOutputIsCappedInMemory(t *testing.T) { //nolint:paralleltest // measures the process's allocations
	job := &Job{ID: 1, Queue: "a", Payload: []byte(`{}`), Attempt: 1}
	run := func(h Handler) (allocated uint64, err error) {
		allocated = allocatedBy(func() { _, err = h.Handle(context.Background(), job) })
		return allocated, err
	}

	n, err := run(&execHandler{argv: []string{"sh", "-c", `printf '"'; head -c 100000000 /dev/zero | tr '\0' x; printf '"'`}})
	require.EqualError(t, err, "stdout: result larger than 16777216 bytes")
	require.Less(t, n, uint64(3*maxOutput), "allocated %d MiB", n>>20)

	n, err = run(&execHandler{argv: []string{"sh", "-c", `head -c 100000000 /dev/zero >&2; echo the end >&2; exit 1`}})
	require.ErrorContains(t, err, "the end")
	require.Less(t, len(err.Error()), stderrTail+100)
	require.Less(t, n, uint64(maxOutput), "allocated %d MiB", n>>20)

	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		chunk := []byte(strings.Repeat("[", 1<<20))
		for range 100 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer big.Close()
	n, err = run(newHTTPHandler(HTTPSpec{URL: big.URL}, 1, traceContext))
	require.EqualError(t, err, "response body: result larger than 16777216 bytes")
	require.Less(t, n, uint64(3*maxOutput), "allocated %d MiB", n>>20)

	declared := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(40<<20))
		w.WriteHeader(200)
	}))
	defer declared.Close()
	_, err = run(newHTTPHandler(HTTPSpec{URL: declared.URL}, 1, traceContext))
	require.EqualError(t, err, "response body: result larger than 16777216 bytes", "refused before reading")
}

// Error text is always storable: valid UTF-8, no NUL, at most 4 KiB cut on
// a character boundary (keeping the end).
func TestErrorTextIsAlwaysStorable(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"exit status 1: a\x00b", "bad \xff\xfe bytes", "x" + strings.Repeat("é", 5000), strings.Repeat("\x00", 9000),
		"cut \xe2\x82", // a 3-byte character missing its last byte
	} {
		out := errorText(errors.New(in), redactor(nil))
		require.True(t, utf8.ValidString(out), "%q", out)
		require.NotContains(t, out, "\x00")
		require.LessOrEqual(t, len(out), 4<<10+len("…"))
	}
	require.Equal(t, "a\ufffdb", errorText(errors.New("a\x00b"), redactor(nil)))
	require.True(t, strings.HasSuffix(errorText(errors.New("x"+strings.Repeat("é", 5000)+"END"), redactor(nil)), "éEND"))
}

// Secrets are blotted out of stored errors, the longest first; short texts
// are left alone (they would blot out ordinary words).
func TestErrorTextRedactsSecrets(t *testing.T) {
	t.Parallel()
	r := redactor([]string{"s3cret-password", "s3cret-password-and-more", "short", "", "token-0123456789abcdef", "s3cret-password"})
	require.Equal(t, "url postgres://u:[redacted]@h, [redacted], token [redacted]; short stays",
		errorText(errors.New("url postgres://u:s3cret-password@h, s3cret-password-and-more, token token-0123456789abcdef; short stays"), r))
}
