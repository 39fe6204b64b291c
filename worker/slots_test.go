package worker

import (
	"testing"
	"time"
)

// A slot is busy from a claim (or a reservation) until its handler
// returns; claimed jobs still waiting for their commit are bounded by the
// slot count again.
func TestSlotsBoundHandlersAndHeldJobs(t *testing.T) {
	t.Parallel()
	sl := slots{size: 4}
	if got := sl.free(0, 0, 0, false); got != 4 {
		t.Fatalf("free = %d, want 4", got)
	}
	for range 4 {
		sl.start(false)
	}
	if got := sl.free(4, 0, 0, false); got != 0 {
		t.Fatalf("all busy: free = %d, want 0", got)
	}
	sl.end(0)
	sl.end(0) // two handlers returned; their jobs wait for their commit
	if got := sl.free(4, 0, 0, false); got != 2 {
		t.Fatalf("two returned, four held: free = %d, want 2", got)
	}
	if got := sl.free(7, 0, 0, false); got != 1 {
		t.Fatalf("seven held (two slots' worth of jobs awaiting commit): free = %d, want 1", got)
	}
	if got := sl.free(4, 0, 0, true); got != 0 {
		t.Fatalf("limited, two returned and four held: free = %d, want 0 until their commits", got)
	}
	if got := sl.free(3, 0, 0, true); got != 1 {
		t.Fatalf("limited, one of them recorded: free = %d, want 1", got)
	}
	sl.reserve(2) // for direct hand-offs
	if got := sl.free(4, 0, 0, false); got != 0 {
		t.Fatalf("two reserved: free = %d, want 0", got)
	}
	sl.start(true) // a reserved slot taken by its hand-off
	sl.unreserve(1)
	if sl.busy != 3 || sl.reserved != 0 {
		t.Fatalf("busy %d, reserved %d; want 3, 0", sl.busy, sl.reserved)
	}
}

// While a backlog waits, jobs are claimed ahead of the free slots: no more
// than the slots run in the span at the handler's pace, at most maxAhead,
// and at most maxAheadBytes of payloads.
func TestSlotsClaimAheadOfTheFreeSlots(t *testing.T) {
	t.Parallel()
	sl := slots{size: 4}
	if got := sl.ahead(250 * time.Millisecond); got != 0 {
		t.Fatalf("no run yet: ahead = %d, want 0", got)
	}
	for range 4 {
		sl.start(false)
	}
	sl.end(10 * time.Millisecond)
	sl.start(false)
	if got := sl.ahead(250 * time.Millisecond); got != 100 {
		t.Fatalf("10 ms handler, 4 slots: ahead = %d, want 100 (250 ms of work)", got)
	}
	if got := sl.free(4, 0, 100, false); got != 100 {
		t.Fatalf("all busy, 100 ahead: free = %d, want 100", got)
	}
	if got := sl.free(104, 100, 100, false); got != 0 {
		t.Fatalf("all busy, 100 waiting: free = %d, want 0", got)
	}
	if got := sl.free(4, 0, 100, true); got != 0 {
		t.Fatalf("limited: free = %d, want 0 (never ahead)", got)
	}
	fast := slots{size: 64, meanRun: time.Microsecond}
	if got := fast.ahead(250 * time.Millisecond); got != maxAhead {
		t.Fatalf("1 µs handler: ahead = %d, want %d", got, maxAhead)
	}
	large := slots{size: 64, meanRun: time.Microsecond}
	large.claimedBytes(10<<20, 10) // 1 MiB payloads
	if got := large.ahead(250 * time.Millisecond); got != 32 {
		t.Fatalf("1 µs handler, 1 MiB payloads: ahead = %d, want 32 (32 MiB)", got)
	}
	slow := slots{size: 8, meanRun: 4 * time.Second}
	if got := slow.ahead(250 * time.Millisecond); got != 0 {
		t.Fatalf("4 s handler, 8 slots: ahead = %d, want 0 (less than one job's work)", got)
	}
}
