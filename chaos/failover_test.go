//go:build chaos

package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// failoverPair makes a primary and a hot standby that streams from it
// synchronously: every commit the primary acknowledges is on the standby.
func failoverPair(t *testing.T) (primary, standby *cluster) {
	t.Helper()
	primary, err := newCluster("primary")
	require.NoError(t, err)
	t.Cleanup(primary.drop)
	standby, err = primary.newStandby("standby")
	require.NoError(t, err)
	t.Cleanup(standby.drop)

	// Synchronous only now that the standby streams: before, the primary's
	// commits would wait for it. ALTER SYSTEM after the base backup, so the
	// standby, once promoted, waits for nobody.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, primary.url("postgres"))
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "ALTER SYSTEM SET synchronous_standby_names = '*'")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "SELECT pg_reload_conf()")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var sync int
		err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'").Scan(&sync)
		return err == nil && sync == 1
	}, 30*time.Second, 50*time.Millisecond, "the standby never became synchronous")
	return primary, standby
}

// failoverURL names both servers, as a client of a Patroni pair or of a
// managed service's failover group does: target_session_attrs=read-write
// skips whichever does not take writes, and connect_timeout bounds the wait
// on a host that is gone.
func failoverURL(primary, standby *cluster, db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/%s?sslmode=disable&target_session_attrs=read-write&connect_timeout=2",
		primary.port, standby.port, db)
}

// failover reads the reports from the standby a third of the way into the
// run, then SIGKILLs the primary and promotes the standby.
func failover(ctx context.Context, e *env) int {
	_, _, faultTime := profile()
	select {
	case <-ctx.Done():
		return 0
	case <-time.After(faultTime / 3):
	}
	e.checkReportsFromStandby()
	if err := e.c.crash(); err != nil {
		e.t.Errorf("crashing the primary: %v", err)
		return 0
	}
	if err := e.standby.promote(); err != nil {
		e.t.Errorf("promoting the standby: %v", err)
	}
	return 1
}

// checkReportsFromStandby runs every report against the read-only standby,
// with DATABASE_URL pointing nowhere, and checks that they saw the run.
func (e *env) checkReportsFromStandby() {
	cmd := exec.Command(e.bin, "report", "--format", "json")
	cmd.Env = append(os.Environ(), "DATABASE_URL=postgres://postgres@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=2",
		"BATON_REPORTS_DATABASE_URL="+e.standby.url(e.db))
	out, err := cmd.Output()
	if err != nil {
		e.t.Errorf("baton report on the standby: %v\n%s", err, out)
		return
	}
	var reports map[string][]map[string]any
	if err := json.Unmarshal(out, &reports); err != nil {
		e.t.Errorf("baton report on the standby: %v\n%s", err, out)
		return
	}
	for _, name := range []string{"queue_summary", "backlog_by_priority", "stage_latency", "throughput_hourly", "stage_errors",
		"failures", "attempts_per_job", "stuck_jobs", "pipeline_lineage", "slowest_journeys", "worker_activity", "table_health", "periodic", "groups"} {
		if _, ok := reports[name]; !ok {
			e.t.Errorf("baton report on the standby: no %s in\n%s", name, out)
		}
	}
	if len(reports["queue_summary"]) == 0 || len(reports["table_health"]) == 0 || len(reports["slowest_journeys"]) == 0 {
		e.t.Errorf("baton report on the standby: the run's queues and journeys expected; got\n%s", out)
	}
}

// TestFailover runs the pipeline while the primary dies and its synchronous
// standby is promoted: nothing acknowledged is lost, nothing runs twice, and
// every process finds the new primary on its own (none exits).
func TestFailover(t *testing.T) {
	r := run(t, scenario{name: "failover", failover: true, fault: failover})
	requireClean(t, r)
	require.Equal(t, 1, r.Faults, "the primary was crashed and the standby promoted")
	require.Zero(t, r.Exits, "every process reconnected without exiting: %s", r)
}
