package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/baton-run/baton/db"
)

const (
	maxOutput  = 16 << 20 // stdout bytes kept as the result
	stderrTail = 4 << 10  // stderr bytes kept as the error
)

// execHandler runs a command per job: the payload on stdin, the result on
// stdout, and a non-zero exit status fails the attempt with stderr's tail.
type execHandler struct{ argv []string }

func (h *execHandler) Handle(ctx context.Context, job *Job) (json.RawMessage, error) {
	cmd := exec.CommandContext(ctx, h.argv[0], h.argv[1:]...)
	cmd.Stdin = bytes.NewReader(job.Payload)
	stdout := &capBuffer{max: maxOutput}
	stderr := &tailBuffer{max: stderrTail}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Env = append(os.Environ(),
		"BATON_JOB_ID="+strconv.FormatInt(job.ID, 10),
		"BATON_QUEUE="+job.Queue,
		"BATON_ATTEMPT="+strconv.Itoa(job.Attempt),
	)
	if tp := db.TraceParentOf(ctx); tp != "" {
		cmd.Env = append(cmd.Env, "TRACEPARENT="+tp) // the OpenTelemetry convention for processes
	}
	// Own process group, so a timeout or cancel stops the command's children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second

	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		msg := bytes.TrimSpace(stderr.Bytes())
		if len(msg) == 0 {
			return nil, fmt.Errorf("%s", exitErr)
		}
		return nil, fmt.Errorf("%s: %s", exitErr, msg)
	}
	if err != nil {
		return nil, fmt.Errorf("running %s: %w", h.argv[0], err)
	}
	if stdout.overflow {
		return nil, fmt.Errorf("stdout is larger than %d bytes", maxOutput)
	}
	return result(stdout.Bytes(), "stdout")
}

// capBuffer keeps up to max bytes and notes whether more were written.
type capBuffer struct {
	bytes.Buffer
	max      int
	overflow bool
}

func (b *capBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.overflow = true
		b.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) Bytes() []byte { return b.buf }

func bytesTrimSpace(b []byte) []byte { return bytes.TrimSpace(b) }

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
