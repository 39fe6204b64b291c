package worker

import "testing"

// A slot is busy from a claim (or a reservation) until its handler
// returns; claimed jobs still waiting for their commit are bounded by the
// slot count again.
func TestSlotsBoundHandlersAndHeldJobs(t *testing.T) {
	t.Parallel()
	sl := slots{size: 4}
	if got := sl.free(0, false); got != 4 {
		t.Fatalf("free = %d, want 4", got)
	}
	for range 4 {
		sl.start(false)
	}
	if got := sl.free(4, false); got != 0 {
		t.Fatalf("all busy: free = %d, want 0", got)
	}
	sl.end(0)
	sl.end(0) // two handlers returned; their jobs wait for their commit
	if got := sl.free(4, false); got != 2 {
		t.Fatalf("two returned, four held: free = %d, want 2", got)
	}
	if got := sl.free(7, false); got != 1 {
		t.Fatalf("seven held (two slots' worth of jobs awaiting commit): free = %d, want 1", got)
	}
	if got := sl.free(4, true); got != 0 {
		t.Fatalf("limited, two returned and four held: free = %d, want 0 until their commits", got)
	}
	if got := sl.free(3, true); got != 1 {
		t.Fatalf("limited, one of them recorded: free = %d, want 1", got)
	}
	sl.reserve(2) // for direct hand-offs
	if got := sl.free(4, false); got != 0 {
		t.Fatalf("two reserved: free = %d, want 0", got)
	}
	sl.start(true) // a reserved slot taken by its hand-off
	sl.unreserve(1)
	if sl.busy != 3 || sl.reserved != 0 {
		t.Fatalf("busy %d, reserved %d; want 3, 0", sl.busy, sl.reserved)
	}
}
