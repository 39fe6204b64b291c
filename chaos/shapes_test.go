//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"time"
)

// checkShapes runs the checks every pipeline gets and those of
// shapesPipeline: each acknowledged split job fanned out to three part jobs
// (positions 0 to 2, once each) that all succeeded, and was joined exactly
// once, into a job of joined whose payload is the three results in order;
// and the periodic entry made at most one job for each tick.
func (e *env) checkShapes(h *history) report {
	r, jobs, children := e.checkJobs(h)
	r.Shapes = true
	ctx := context.Background()

	// The split jobs whose joined job holds what their parts returned, in order.
	rightJoin := map[int64]bool{}
	rows, err := e.pool.Query(ctx, `SELECT s.id FROM baton.jobs s
		JOIN baton.jobs j ON j.parent_id = s.id AND j.parent_seq = -1 AND j.queue = 'joined'
		WHERE s.queue = 'split'
		  AND j.payload = (SELECT jsonb_agg(jsonb_build_object('i', i, 'p', s.payload) ORDER BY i) FROM generate_series(0, 2) i)`)
	if err != nil {
		e.t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			e.t.Fatal(err)
		}
		rightJoin[id] = true
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	seqs := map[int64]int32{}
	rows, err = e.pool.Query(ctx, "SELECT id, parent_seq FROM baton.jobs WHERE queue = 'part'")
	if err != nil {
		e.t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		var seq int32
		if err := rows.Scan(&id, &seq); err != nil {
			e.t.Fatal(err)
		}
		seqs[id] = seq
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}

	acked := map[int64]bool{}
	for _, id := range h.acked() {
		acked[id] = true
		j := jobs[id]
		if j == nil || j.queue != "split" || j.state != "succeeded" {
			r.Lost++
			continue
		}
		parts, joins := map[int32]int{}, 0
		whole := true
		for _, c := range children[id] {
			switch cj := jobs[c]; cj.queue {
			case "part":
				parts[seqs[c]]++
				whole = whole && cj.state == "succeeded"
			case "joined":
				joins++
				whole = whole && cj.state == "succeeded"
			}
		}
		for seq, n := range parts {
			if n > 1 || seq < 0 || seq > 2 {
				r.DupHandoff++
			}
		}
		if joins > 1 {
			r.DupJoin++
		}
		if len(parts) != 3 || joins != 1 || !whole || !rightJoin[id] {
			r.Lost++
		}
	}
	for _, j := range jobs {
		switch {
		case j.queue == "split" && !acked[j.id]:
			r.Unexpected++
		case j.parent != 0 && (jobs[j.parent] == nil || jobs[j.parent].state != "succeeded"):
			r.OrphanHandoff++
		}
	}

	// The ticks. A job is made due at its tick (run_at), which its first
	// attempt's end records as due_at: a reap moves run_at on (to now(), the
	// same for every job of one reap).
	err = e.pool.QueryRow(ctx, tickJobs+`SELECT count(*), count(*) - count(DISTINCT tick), count(*) FILTER (WHERE state <> 'succeeded')
		FROM ticks`).Scan(&r.Ticks, &r.DupTick, &r.UnfinishedTicks)
	if err != nil {
		e.t.Fatal(err)
	}
	r.Lost += r.UnfinishedTicks
	if r.DupTick > 0 {
		rows, _ := e.pool.Query(ctx, tickJobs+`SELECT t.id, t.tick, j.created_at, t.state,
			(SELECT string_agg(coalesce(h.from_state::text, '') || '>' || h.to_state || ' ' || coalesce(h.worker, '') || ' ' || h.at::text, ', ' ORDER BY h.seq)
			 FROM baton.job_history h WHERE h.job_id = t.id)
			FROM ticks t JOIN baton.jobs j ON j.id = t.id
			WHERE t.tick IN (SELECT tick FROM ticks GROUP BY tick HAVING count(*) > 1)
			ORDER BY t.id`)
		for rows.Next() {
			var id int64
			var runAt, created time.Time
			var state, history string
			if err := rows.Scan(&id, &runAt, &created, &state, &history); err == nil {
				e.t.Logf("tick job %d: run_at %s created %s %s: %s", id, runAt.Format(time.RFC3339Nano), created.Format(time.RFC3339Nano), state, history)
			}
		}
		var entry string
		_ = e.pool.QueryRow(ctx, "SELECT row_to_json(p)::text FROM baton.periodic_entries p").Scan(&entry)
		e.t.Logf("entry: %s", entry)
	}
	r.TickBound = tickBound(e.ticked)
	return r
}

// tickJobs names the jobs of the periodic entry, each with its tick.
const tickJobs = `WITH ticks AS (
	SELECT j.id, j.state::text AS state,
	       coalesce((SELECT e.due_at FROM baton.job_events e WHERE e.job_id = j.id AND e.due_at IS NOT NULL ORDER BY e.id LIMIT 1), j.run_at) AS tick
	FROM baton.jobs j WHERE j.queue = 'ticks')
`

// stopTicks moves the periodic entry's next tick past the run, so that no
// job appears while the checker counts.
func (e *env) stopTicks() {
	e.ticked = time.Since(e.began)
	if _, err := e.pool.Exec(context.Background(), "UPDATE baton.periodic_entries SET next_tick = '9999-01-01'"); err != nil {
		e.t.Fatal(err)
	}
}

// shapesLine is the shapes' part of a report's figure line.
func (r report) shapesLine() string {
	return fmt.Sprintf(" | dup_join=%d ticks=%d (at most %d) dup_tick=%d unfinished_ticks=%d succeeded split/part/joined=%d/%d/%d",
		r.DupJoin, r.Ticks, r.TickBound, r.DupTick, r.UnfinishedTicks, r.SucceededPerQ["split"], r.SucceededPerQ["part"], r.SucceededPerQ["joined"])
}

// tickBound is the most ticks a run of d can make: one a second, and one
// more for the tick that was due when it began.
func tickBound(d time.Duration) int { return int(d/time.Second) + 1 }
