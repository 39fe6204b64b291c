//go:build chaos

package chaos

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// report is what the checker found over a scenario's history and database.
type report struct {
	Accepted      int // acknowledged submits
	Indeterminate int // submit attempts with no answer (each retried with its key)
	Faults        int
	Poison        int // acknowledged poison jobs (expected dead)
	// PoisonErrors are the poison jobs' last errors.
	PoisonErrors []string

	Lost            int // acknowledged jobs whose chain a -> b -> c is missing a job or has one not finished
	Collateral      int // acknowledged good jobs that ended dead (lease lost too often, e.g. beside a worker-killing job)
	Unexpected      int // stage-a jobs nobody submitted
	DupTerminal     int // jobs with more than one terminal transition
	DupHandoff      int // jobs that handed off to one position twice
	MissingHandoff  int // succeeded jobs of a or b with no next job
	OrphanHandoff   int // jobs whose parent did not succeed
	AttemptsOver    int // jobs with attempts > max_attempts
	Illegal         int // transitions outside the state graph, or not continuing the previous state
	DoubleClaim     int // two claims with one (job, lease token)
	StaleToken      int // a transition out of running made with an old lease token (a zombie accepted)
	CountDrift      int // jobs by which baton.queue_summary's counters differ from the rows themselves
	MaxRunningB     int // the most of b's jobs running at once, replayed from the history
	OverLimit       int // by how much that passed b's global concurrency
	ZombieRejected  int // late writes refused by the fence, or stopped by a heartbeat that found the lease gone (from worker logs)
	MaxAttempt      int
	SucceededPerQ   map[string]int
	RecoveryP99     time.Duration // lost claim -> next claim, over reaped jobs
	RecoveryBound   time.Duration
	QuiesceDuration time.Duration
	Exits           int // process incarnations that ended before the end of the run (the harness restarts them)

	// Of shapesPipeline (checkShapes).
	Shapes          bool
	DupJoin         int // fan-outs joined more than once
	Ticks           int // jobs the periodic entry made
	TickBound       int // the most it could make in the time it ran
	DupTick         int // ticks that made more than one job
	UnfinishedTicks int // tick jobs that did not succeed (counted lost too)
}

// damage counts every violation of Baton's promises.
func (r report) damage() int {
	return r.Lost + r.Unexpected + r.DupTerminal + r.DupHandoff + r.MissingHandoff + r.OrphanHandoff +
		r.AttemptsOver + r.Illegal + r.DoubleClaim + r.StaleToken + r.CountDrift + r.DupJoin + r.DupTick + r.OverLimit
}

func (r report) String() string {
	within := "yes"
	if r.RecoveryP99 > r.RecoveryBound {
		within = "no"
	}
	line := fmt.Sprintf("accepted=%d indeterminate=%d faults=%d poison=%d collateral_dead=%d | lost=%d unexpected=%d dup_terminal=%d dup_handoff=%d "+
		"missing_handoff=%d orphan_handoff=%d attempts_over=%d illegal=%d double_claim=%d stale_token=%d count_drift=%d over_limit=%d | "+
		"zombie_rejected=%d max_running_b=%d/%d max_attempt=%d/%d succeeded a/b/c=%d/%d/%d recovery_p99=%s (bound %s, within: %s) quiesced_in=%s exits=%d",
		r.Accepted, r.Indeterminate, r.Faults, r.Poison, r.Collateral, r.Lost, r.Unexpected, r.DupTerminal, r.DupHandoff,
		r.MissingHandoff, r.OrphanHandoff, r.AttemptsOver, r.Illegal, r.DoubleClaim, r.StaleToken, r.CountDrift, r.OverLimit,
		r.ZombieRejected, r.MaxRunningB, bLimit, r.MaxAttempt, maxAttempts, r.SucceededPerQ["a"], r.SucceededPerQ["b"], r.SucceededPerQ["c"],
		r.RecoveryP99.Round(time.Millisecond), r.RecoveryBound.Round(time.Millisecond), within, r.QuiesceDuration.Round(time.Millisecond), r.Exits)
	if r.Shapes {
		line += r.shapesLine()
	}
	return line
}

// allowed is the state graph of docs/design.md ("" = created).
var allowed = map[[2]string]bool{
	{"", "available"}: true, {"", "scheduled"}: true,
	{"scheduled", "available"}: true, {"scheduled", "running"}: true, {"scheduled", "canceled"}: true,
	{"available", "running"}: true, {"available", "canceled"}: true,
	{"retrying", "available"}: true, {"retrying", "running"}: true, {"retrying", "canceled"}: true,
	{"running", "succeeded"}: true, {"running", "retrying"}: true, {"running", "dead"}: true,
	{"running", "available"}: true, {"running", "canceled"}: true, {"running", "scheduled"}: true,
	{"dead", "available"}: true, {"canceled", "available"}: true,
}

type event struct {
	jobID      int64
	at         time.Time
	from, to   string
	leaseToken int64
	err        string
}

// check runs every check of the suite on the a -> b -> c pipeline.
func (e *env) check(h *history, poison func(n int) bool) report {
	r, jobs, children := e.checkJobs(h)

	// Lost: an acknowledged job whose chain a -> b -> c is incomplete or not
	// finished. A poison job must end dead in a; a good one succeeded in
	// every stage, or (collateral) ended dead somewhere.
	terminal := map[string]bool{"succeeded": true, "dead": true, "canceled": true}
	acked := h.acked()
	ackedIDs := map[int64]bool{}
	for key, id := range acked {
		ackedIDs[id] = true
		var n int
		_, _ = fmt.Sscanf(key, "job-%d", &n)
		j := jobs[id]
		if poison(n) {
			r.Poison++
			if j == nil || j.state != "dead" || j.attempts != j.maxAttempt {
				r.Lost++
			} else {
				r.PoisonErrors = append(r.PoisonErrors, j.lastError)
			}
			continue
		}
		for _, q := range []string{"a", "b", "c"} {
			if j == nil || j.queue != q || !terminal[j.state] {
				r.Lost++
				break
			}
			if j.state != "succeeded" {
				r.Collateral++
				break
			}
			if q != "c" {
				if len(children[j.id]) != 1 {
					break // counted as a missing or duplicate hand-off below
				}
				j = jobs[children[j.id][0]]
			}
		}
	}
	for _, j := range jobs {
		switch {
		case j.queue == "a" && !ackedIDs[j.id]:
			r.Unexpected++ // an indeterminate submit that was never acknowledged, or worse
		case j.parent != 0 && (jobs[j.parent] == nil || jobs[j.parent].state != "succeeded"):
			r.OrphanHandoff++
		}
		if n := len(children[j.id]); n > 1 {
			r.DupHandoff++
		} else if n == 0 && j.state == "succeeded" && j.queue != "c" {
			r.MissingHandoff++
		}
	}

	return r
}

// job is a row of baton.jobs, as the checker reads it.
type job struct {
	id, parent           int64
	queue, state         string
	attempts, maxAttempt int
	lastError            string
}

// checkJobs runs the checks every pipeline gets: attempts, the counters,
// and each job's history. It returns the jobs, and the ids each handed off.
func (e *env) checkJobs(h *history) (report, map[int64]*job, map[int64][]int64) {
	ctx := context.Background()
	r := report{Accepted: len(h.acked()), Indeterminate: h.count("info"), SucceededPerQ: map[string]int{}}
	r.RecoveryBound = lease + maintenance + pollEvery + lease/3
	jobs := map[int64]*job{}
	children := map[int64][]int64{}
	rows, _ := e.pool.Query(ctx, "SELECT id, coalesce(parent_id, 0), queue, state::text, attempts, coalesce(max_attempts, 0), coalesce(last_error, '') FROM baton.jobs")
	for rows.Next() {
		j := &job{}
		if err := rows.Scan(&j.id, &j.parent, &j.queue, &j.state, &j.attempts, &j.maxAttempt, &j.lastError); err != nil {
			e.t.Fatal(err)
		}
		jobs[j.id] = j
		if j.parent != 0 {
			children[j.parent] = append(children[j.parent], j.id)
		}
		if j.state == "succeeded" {
			r.SucceededPerQ[j.queue]++
		}
		if j.maxAttempt > 0 && j.attempts > j.maxAttempt {
			r.AttemptsOver++
		}
		r.MaxAttempt = max(r.MaxAttempt, j.attempts)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	truth := map[[2]string]int{}
	for _, j := range jobs {
		truth[[2]string{j.queue, j.state}]++
	}
	r.CountDrift = e.countDrift(ctx, truth)

	// The history, job by job.
	rows, _ = e.pool.Query(ctx, `SELECT job_id, at, coalesce(from_state::text, ''), to_state::text, lease_token, coalesce(error, '')
		FROM baton.job_history ORDER BY job_id, seq`)
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (event, error) {
		var ev event
		err := row.Scan(&ev.jobID, &ev.at, &ev.from, &ev.to, &ev.leaseToken, &ev.err)
		return ev, err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	r.MaxRunningB = mostRunning(events, jobs, "b")
	r.OverLimit = max(0, r.MaxRunningB-bLimit)
	var recoveries []time.Duration
	for i := 0; i < len(events); {
		j := i
		for j < len(events) && events[j].jobID == events[i].jobID {
			j++
		}
		r.checkJob(events[i:j], &recoveries)
		i = j
	}
	if len(recoveries) > 0 {
		slices.Sort(recoveries)
		r.RecoveryP99 = recoveries[(len(recoveries)*99+99)/100-1]
	}
	logs := e.logs("w")
	// A zombie's late write is refused by the fence, or never attempted
	// because its first heartbeat after waking found the lease gone.
	r.ZombieRejected = strings.Count(logs, "fenced: lease lost") + strings.Count(logs, "handler stopped: lease lost")
	return r, jobs, children
}

// checkJob checks one job's history: each transition allowed and continuing
// the previous state, one terminal transition, no claim token used twice,
// and every transition out of running made under the latest claim's token.
// countDrift compares queue_summary (the trigger-kept counters, through
// crashes and restarts) with the jobs themselves.
func (e *env) countDrift(ctx context.Context, truth map[[2]string]int) int {
	rows, err := e.pool.Query(ctx, `SELECT queue, scheduled, available, running, retrying, succeeded, dead, canceled FROM baton.queue_summary`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	drift := 0
	for rows.Next() {
		var q string
		var n [7]int
		if err := rows.Scan(&q, &n[0], &n[1], &n[2], &n[3], &n[4], &n[5], &n[6]); err != nil {
			e.t.Fatal(err)
		}
		for i, st := range []string{"scheduled", "available", "running", "retrying", "succeeded", "dead", "canceled"} {
			if d := n[i] - truth[[2]string{q, st}]; d != 0 {
				e.t.Logf("count drift: queue %s state %s: summary %d, rows %d", q, st, n[i], truth[[2]string{q, st}])
				drift += max(d, -d)
			}
		}
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return drift
}

func (r *report) checkJob(evs []event, recoveries *[]time.Duration) {
	state, token := "", int64(-1)
	terminal := 0
	claims := map[int64]int{}
	var lostClaim time.Time
	for _, ev := range evs {
		if !allowed[[2]string{ev.from, ev.to}] || ev.from != state {
			r.Illegal++
		}
		if ev.from == "running" && ev.leaseToken != token {
			r.StaleToken++
		}
		if ev.to == "running" {
			claims[ev.leaseToken]++
			if claims[ev.leaseToken] > 1 {
				r.DoubleClaim++
			}
			if !lostClaim.IsZero() {
				*recoveries = append(*recoveries, ev.at.Sub(lostClaim))
				lostClaim = time.Time{}
			}
			token = ev.leaseToken
		}
		if ev.from == "running" && strings.HasPrefix(ev.err, "lease expired") {
			lostClaim = claimTime(evs, ev.leaseToken)
		}
		switch ev.to {
		case "succeeded", "dead", "canceled":
			terminal++
		}
		state = ev.to
	}
	if terminal > 1 {
		r.DupTerminal++
	}
}

// mostRunning replays the history of queue's jobs and returns the most
// that ran at once: each run from its claim to the transition that ended
// it (at the same instant, an end comes before a start). A claim records
// when it took its rows, after its turn on a limited queue, and an ending
// the start of the statement that commits it: a run looks longer here than
// it was, never shorter.
func mostRunning(events []event, jobs map[int64]*job, queue string) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, ev := range events {
		if j := jobs[ev.jobID]; j == nil || j.queue != queue {
			continue
		}
		if ev.to == "running" {
			edges = append(edges, edge{ev.at, +1})
		}
		if ev.from == "running" {
			edges = append(edges, edge{ev.at, -1})
		}
	}
	slices.SortFunc(edges, func(a, b edge) int { return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.delta, b.delta)) })
	most, now := 0, 0
	for _, e := range edges {
		now += e.delta
		most = max(most, now)
	}
	return most
}

func claimTime(evs []event, token int64) time.Time {
	for _, ev := range evs {
		if ev.to == "running" && ev.leaseToken == token {
			return ev.at
		}
	}
	return time.Time{}
}
