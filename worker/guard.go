package worker

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
)

// A guard kills what a worker's exec handlers started when the worker dies.
// A worker that is SIGKILLed (or crashes, or is OOM-killed) cannot stop its
// handlers itself, and a handler that outlives its worker runs beside the
// job's next attempt on another replica.
//
// The guard is a small POSIX shell process (builtins only: no fork per
// message) that reads "+PGID" and "-PGID" lines from a pipe whose write end
// only the worker holds: Go opens it close-on-exec, so no handler inherits
// it. When the worker dies the kernel closes that end, the guard reads the
// end of its input, and it kills every process group still listed,
// grandchildren included ("kill -KILL -PGID": dash's kill takes no "--").
// It runs in a process group of its own, so that a
// signal to the worker's group spares it, and it ignores the signals a
// supervisor sends to every process of a service.
const guardScript = `trap '' INT TERM HUP
live=' '
while read -r line; do
	case $line in
	+*) live="$live${line#+} " ;;
	-*) g=${line#-}
		case $live in *" $g "*) live="${live%% $g *} ${live#* $g }" ;; esac ;;
	esac
done
for g in $live; do kill -KILL "-$g" 2>/dev/null; done
`

type guard struct {
	mu   sync.Mutex
	pipe *os.File // the write end; nil when no guard runs
	cmd  *exec.Cmd
	log  *slog.Logger
}

// start starts the guard process.
func (g *guard) start(log *slog.Logger) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("starting the handler guard: %w", err)
	}
	defer r.Close()
	cmd := exec.Command("sh", "-c", guardScript)
	if cmd.Err != nil {
		w.Close()
		return fmt.Errorf("starting the handler guard: %w", cmd.Err)
	}
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("starting the handler guard: %w", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pipe, g.cmd, g.log = w, cmd, log
	return nil
}

// shell is the path of the guard's shell while the guard runs, which also
// holds commands until they are listed (exec.go), and "" when none runs (a
// handler run outside a worker).
func (g *guard) shell() string {
	if g == nil {
		return ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pipe == nil {
		return ""
	}
	return g.cmd.Path
}

// watch lists a handler's process group, to be killed if the worker dies.
func (g *guard) watch(pgid int) { g.send('+', pgid) }

// forget takes a group off the list once its handler is over.
func (g *guard) forget(pgid int) { g.send('-', pgid) }

func (g *guard) send(op byte, pgid int) {
	if g == nil { // a handler run outside a worker
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pipe == nil {
		return
	}
	if _, err := fmt.Fprintf(g.pipe, "%c%d\n", op, pgid); err != nil {
		g.log.Error("the handler guard is gone: handlers may outlive this worker if it dies", "error", err)
		g.pipe.Close()
		g.pipe = nil
	}
}

// stop ends the guard: it reads the end of its input and exits, killing any
// group still listed.
func (g *guard) stop() {
	g.mu.Lock()
	pipe, cmd := g.pipe, g.cmd
	g.pipe = nil
	g.mu.Unlock()
	if pipe != nil {
		pipe.Close()
	}
	if cmd != nil {
		_ = cmd.Wait()
	}
}
