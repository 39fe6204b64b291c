package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/baton-run/baton/internal/store"
)

const (
	maxOutput  = store.MaxPayload // result bytes kept (exec stdout, http response body, Go results)
	stderrTail = 4 << 10          // stderr bytes kept as the error
)

// errTooLarge is a result past maxOutput.
var errTooLarge = fmt.Errorf("result larger than %d bytes", maxOutput)

// execHandler runs a command per job: the payload on stdin, the result on
// stdout, and a non-zero exit status fails the attempt with stderr's tail.
// The command's process group ends with its attempt, and with its worker
// (through the guard).
type execHandler struct {
	argv  []string
	guard *guard
	env   []string // handlerEnv's: the job's own variables are added per run
}

// inheritedEnv are the variables of the worker's environment a handler
// gets. The rest stay the worker's: its DATABASE_URL, its API tokens, its
// exporter's headers (a handler that printed its environment stored them in
// last_error, readable by the reporting role).
var inheritedEnv = []string{"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"}

// handlerEnv is an exec handler's environment, but for the job's own
// variables: inheritedEnv from environ, then the stage's env (os/exec keeps
// the last of two values).
func handlerEnv(environ []string, stage map[string]string) []string {
	var env []string
	for _, kv := range environ {
		if name, _, _ := strings.Cut(kv, "="); slices.Contains(inheritedEnv, name) {
			env = append(env, kv)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(stage)) {
		env = append(env, name+"="+stage[name])
	}
	return env
}

func (h *execHandler) Handle(ctx context.Context, job *Job) (_ json.RawMessage, err error) {
	// A command printing past maxOutput is stopped at once: its result is
	// lost anyway, and the worker's memory stays bounded.
	cctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	cmd := exec.CommandContext(cctx, h.argv[0], h.argv[1:]...)
	if cmd.Err != nil { // not found, or not executable
		return nil, fmt.Errorf("running %s: %w", h.argv[0], cmd.Err)
	}
	var gate *os.File
	if sh := h.guard.shell(); sh != "" {
		if gate, err = h.gated(cmd, sh); err != nil {
			return nil, err
		}
		defer gate.Close()
	}
	cmd.Stdin = bytes.NewReader(job.Payload)
	stdout := &capBuffer{max: maxOutput, full: func() { stop(errTooLarge) }}
	stderr := &tailBuffer{max: stderrTail}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Env = append(slices.Clip(h.env),
		"BATON_JOB_ID="+strconv.FormatInt(job.ID, 10),
		"BATON_QUEUE="+job.Queue,
		"BATON_ATTEMPT="+strconv.Itoa(job.Attempt),
	)
	if tp := store.TraceParentOf(ctx); tp != "" {
		cmd.Env = append(cmd.Env, "TRACEPARENT="+tp) // the OpenTelemetry convention for processes
	}
	cmd.SysProcAttr = handlerProcAttr()
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second

	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("running %s: %w", h.argv[0], err)
	}
	h.guard.watch(cmd.Process.Pid)
	if gate != nil {
		_, _ = gate.Write([]byte("go\n")) // listed: the command may run (if it is gone, Wait says why)
		gate.Close()
	}
	err = cmd.Wait()
	// The attempt is over: nothing it started goes on (a command may have
	// left children behind).
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	h.guard.forget(cmd.Process.Pid)
	switch {
	case ctx.Err() != nil:
		return nil, context.Cause(ctx)
	case stdout.over:
		return nil, fmt.Errorf("stdout: %w", errTooLarge)
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && exitErr.ExitCode() == exitInstruction {
		return nil, instruction(stdout.buf)
	}
	if errors.As(err, &exitErr) {
		msg := bytes.TrimSpace(stderr.buf)
		if len(msg) == 0 {
			return nil, fmt.Errorf("%s", exitErr)
		}
		return nil, fmt.Errorf("%s: %s", exitErr, msg)
	}
	if err != nil {
		return nil, fmt.Errorf("running %s: %w", h.argv[0], err)
	}
	return result(stdout.buf, "stdout")
}

// exitInstruction is the exit code (EX_TEMPFAIL) with which a command asks,
// on stdout, to run again later ({"snooze": "30s"}) or to end its job as
// canceled ({"cancel": "why"}).
const exitInstruction = 75

// instruction reads what a command that exited with exitInstruction asks.
func instruction(stdout []byte) error {
	var in struct {
		Snooze *string `json:"snooze"`
		Cancel *string `json:"cancel"`
	}
	bad := fmt.Errorf("exit status %d without an instruction on stdout (want {\"snooze\": \"30s\"} or {\"cancel\": \"why\"}): %q",
		exitInstruction, truncate(bytes.TrimSpace(stdout), 200))
	if err := json.Unmarshal(stdout, &in); err != nil || (in.Snooze == nil) == (in.Cancel == nil) {
		return bad
	}
	if in.Cancel != nil {
		return Cancel(errors.New(*in.Cancel))
	}
	d, err := time.ParseDuration(*in.Snooze)
	if err != nil || d < 0 {
		return bad
	}
	return Snooze(d)
}

// gate holds a command until its worker has listed its process group with
// the guard: a command that ran before could fork children that outlive a
// worker killed in between (the kernel's parent-death signal reaches the
// command only, and the guard did not know its group yet). It reads a line
// from fd 3, which the worker writes once the group is listed; a worker
// that died first closed it, and the command never runs.
const gate = `read -r go <&3 || exit 125; exec 3<&-; `

// gated makes cmd wait at the gate before it runs, and returns the gate's
// write end. A shell script (sh -c, bash -c) gets the gate at its start;
// any other command is run by a shell that passes the gate and then execs
// it (about 0.4 ms more per job on the machine of docs/benchmarks.md).
func (h *execHandler) gated(cmd *exec.Cmd, sh string) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("running %s: %w", h.argv[0], err)
	}
	cmd.ExtraFiles = []*os.File{r} // fd 3 in the child; ours closes once it started
	switch shell := filepath.Base(h.argv[0]); {
	case (shell == "sh" || shell == "bash" || shell == "dash") && len(h.argv) >= 3 && h.argv[1] == "-c":
		cmd.Args = append([]string{h.argv[0], "-c", gate + h.argv[2]}, h.argv[3:]...)
	default:
		cmd.Args = append([]string{"sh", "-c", gate + `exec "$0" "$@"`, cmd.Path}, h.argv[1:]...)
		cmd.Path = sh
	}
	return w, nil
}

// capBuffer keeps up to max bytes. The first write past them calls full (if
// set) and fails, which stops os/exec copying. (os/exec copies into a
// writer with a ReadFrom method, as an embedded bytes.Buffer has, past any
// cap its Write keeps.) It grows by doubling up to max, so it allocates at
// most twice max.
type capBuffer struct {
	buf  []byte
	max  int
	full func()
	over bool
}

func (b *capBuffer) Write(p []byte) (int, error) {
	if b.over || len(b.buf)+len(p) > b.max {
		if !b.over && b.full != nil {
			b.full()
		}
		b.over = true
		return 0, errTooLarge
	}
	if len(b.buf)+len(p) > cap(b.buf) {
		grown := make([]byte, len(b.buf), min(max(2*cap(b.buf), len(b.buf)+len(p), 4<<10), b.max))
		copy(grown, b.buf)
		b.buf = grown
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > b.max {
		p = p[len(p)-b.max:]
	}
	if drop := len(b.buf) + len(p) - b.max; drop > 0 {
		b.buf = append(b.buf[:0], b.buf[drop:]...)
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
