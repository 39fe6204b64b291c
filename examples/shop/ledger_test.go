package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/db"
)

// shopBin is the shop, built once for the tests that run it as processes.
var shopBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shop-test")
	if err != nil {
		panic(err)
	}
	shopBin = filepath.Join(dir, "shop")
	if out, err := exec.Command("go", "build", "-o", shopBin, ".").CombinedOutput(); err != nil {
		panic(fmt.Sprintf("building shop: %v\n%s", err, out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// 2,000 invoices charged by three worker processes, while one is SIGKILLed
// (three times, and started again) and one is SIGSTOPped past its lease and
// resumed. Each charge books a ledger row and completes its job in one
// transaction (worker.CompleteTx): exactly 2,000 rows, one per invoice, and
// every invoice succeeded. The same run with the row booked outside that
// transaction shows the duplicates it prevents: the killed and the frozen
// workers' charges ran again elsewhere.
func TestTheLedgerHoldsOneRowPerInvoiceThroughCrashesAndFreezes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes for about 20 s")
	}
	t.Parallel()
	for _, unsafe := range []bool{false, true} {
		t.Run(map[bool]string{false: "CompleteTx", true: "outside the transaction"}[unsafe], func(t *testing.T) {
			t.Parallel()
			rows, invoices := chargeUnderFaults(t, 2000, unsafe)
			t.Logf("ledger rows: %d for %d invoices", rows, invoices)
			require.Equal(t, 2000, invoices, "every invoice booked")
			if unsafe {
				require.Greater(t, rows, invoices, "charges that ran twice were booked twice")
			} else {
				require.Equal(t, invoices, rows, "one row per invoice")
			}
		})
	}
}

// chargeUnderFaults submits n invoices, charges them with three worker
// processes through the faults, and returns the ledger's rows and the
// invoices they are for.
func chargeUnderFaults(t *testing.T, n int, unsafe bool) (rows, invoices int) {
	pool, url := newShop(t)
	ctx := context.Background()
	jobs := make([]db.NewJob, n)
	for i := range jobs {
		jobs[i] = db.NewJob{Queue: Invoices.Name, Payload: fmt.Appendf(nil, `{"order_id": %d, "cents": 100, "email": "a@example.com"}`, i+1)}
	}
	_, err := db.Submit(ctx, pool, jobs...)
	require.NoError(t, err)

	args := []string{"--lease", "1s", "--charge-time", "20ms"}
	if unsafe {
		args = append(args, "--unsafe-ledger")
	}
	var workers [3]*process
	for i := range workers {
		workers[i] = startWorker(t, url, fmt.Sprintf("w%d", i), args)
	}
	succeeded := func() int {
		return count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'invoices' AND state = 'succeeded'")
	}
	at := func(done int) {
		require.Eventually(t, func() bool { return succeeded() >= done }, time.Minute, 10*time.Millisecond, "%d of %d succeeded", succeeded(), n)
	}
	kill := func(i int) {
		workers[i].kill(t)
		workers[i] = startWorker(t, url, fmt.Sprintf("w%d-again-%d", i, time.Now().UnixNano()), args)
	}

	at(n / 8)
	kill(0)
	at(n / 4)
	// Frozen until the reaper (on the others) gives its jobs back, then
	// resumed: its charges in flight finish after others ran them again.
	// It is frozen while it holds a lease: between jobs it may hold none,
	// and a completion it sent just before the freeze may still end the
	// lease it held, leaving nothing to reap; then it runs on and is frozen
	// again. The reaper's history row names the worker whose lease expired.
	leases := func() int {
		return count(t, pool, "SELECT count(*) FROM baton.jobs WHERE state = 'running' AND leased_by = 'w1'")
	}
	reaped := func() int {
		return count(t, pool, "SELECT count(*) FROM baton.job_events WHERE worker = 'w1' AND error LIKE 'lease expired%'")
	}
	before, frozen := reaped(), false
	require.Eventually(t, func() bool {
		if frozen && reaped() > before {
			return true
		}
		if !frozen {
			require.NoError(t, workers[1].cmd.Process.Signal(syscall.SIGSTOP))
		}
		if frozen = leases() > 0; !frozen {
			require.NoError(t, workers[1].cmd.Process.Signal(syscall.SIGCONT))
		}
		return false
	}, time.Minute, 10*time.Millisecond, "worker 1 frozen while it held a lease, and its leases reaped")
	require.NoError(t, workers[1].cmd.Process.Signal(syscall.SIGCONT))
	at(n / 2)
	kill(2)
	at(3 * n / 4)
	kill(0)
	at(n)
	for _, w := range workers {
		w.stop(t)
	}

	require.Equal(t, n, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'invoices' AND state = 'succeeded'"))
	return count(t, pool, "SELECT count(*) FROM shop.ledger"), count(t, pool, "SELECT count(DISTINCT job_id) FROM shop.ledger")
}

func count(t *testing.T, pool *pgxpool.Pool, sql string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql).Scan(&n))
	return n
}

// process is a shop worker the test started.
type process struct {
	cmd    *exec.Cmd
	stderr syncBuffer
	done   chan error
}

// syncBuffer is a bytes.Buffer the process writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func startWorker(t *testing.T, url, id string, args []string) *process {
	p := &process{done: make(chan error, 1)}
	p.cmd = exec.Command(shopBin, append([]string{"worker", "--id", id}, args...)...)
	p.cmd.Env = append(os.Environ(), "DATABASE_URL="+url)
	p.cmd.Stderr = &p.stderr
	require.NoError(t, p.cmd.Start())
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *process) kill(t *testing.T) {
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.done
}

// stop stops the worker as an orchestrator would (SIGTERM), and waits for
// its graceful exit. It waits first for the worker to have started: a
// SIGTERM before the program listens for it ends the process at once.
func (p *process) stop(t *testing.T) {
	require.Eventually(t, func() bool { return strings.Contains(p.stderr.String(), "worker started") }, 30*time.Second, 5*time.Millisecond, p.stderr.String())
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-p.done:
		require.NoError(t, err, "worker: %s", p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("worker did not stop: %s", p.stderr.String())
	}
}
