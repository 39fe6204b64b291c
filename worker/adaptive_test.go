package worker

import (
	"testing"
	"time"
)

// Adaptive slots start at the default, grow to their ceiling while claims
// find a backlog and the handler's latency holds, back off to the floor
// when it rises (where its latency becomes the new base, a quarter at a
// time), and fall to twice what was used over an idle poll interval.
func TestAdaptiveSlots(t *testing.T) {
	t.Parallel()
	sl := slotsFor(Stage{MaxConcurrency: 1000})
	if sl.size != DefaultConcurrency {
		t.Fatalf("starts at %d, want %d", sl.size, DefaultConcurrency)
	}
	// A round of every slot: claims fill the free slots, handlers return.
	round := func(d time.Duration, full bool) {
		n := sl.size
		for range n {
			sl.start(false)
		}
		sl.claimed(full)
		for range n {
			sl.end(d)
		}
	}
	for range 60 {
		round(50*time.Microsecond, true)
	}
	if sl.size != 1000 {
		t.Fatalf("cheap handler under a backlog: %d slots, want the ceiling 1000", sl.size)
	}
	round(50*time.Microsecond, false)
	if sl.size != 1000 {
		t.Fatalf("no backlog in a round: %d slots, want them kept until the poll tick", sl.size)
	}
	for i := 0; sl.size > DefaultConcurrency; i++ {
		if i == 40 {
			t.Fatalf("latency rose 400-fold: %d slots after 40 rounds, want the floor %d", sl.size, DefaultConcurrency)
		}
		round(20*time.Millisecond, true)
	}
	for i := 0; sl.size <= DefaultConcurrency; i++ {
		if i == 40 {
			t.Fatalf("the slower latency held at the floor: %d slots after 40 rounds, want them growing from it again", sl.size)
		}
		round(20*time.Millisecond, true)
	}

	sl = slotsFor(Stage{MaxConcurrency: 1000})
	for range 40 {
		round(time.Millisecond, true)
	}
	grown := sl.size
	sl.tick() // the interval had a backlog
	if sl.size != grown {
		t.Fatalf("tick after a backlog: %d slots, want %d kept", sl.size, grown)
	}
	for range 30 {
		sl.start(false)
	}
	for range 30 {
		sl.end(time.Millisecond)
	}
	sl.claimed(false)
	sl.tick() // an interval with no backlog that used 30 slots at most
	if sl.size != 60 {
		t.Fatalf("an interval using 30 slots: %d slots, want 60", sl.size)
	}
	sl.tick() // one that used none
	if sl.size != DefaultConcurrency {
		t.Fatalf("idle: %d slots, want the floor %d", sl.size, DefaultConcurrency)
	}

	if sl := slotsFor(Stage{MaxConcurrency: 3}); sl.size != 3 || sl.auto.floor != 3 {
		t.Fatalf("a ceiling of 3: %d slots, floor %d; want 3 and 3", sl.size, sl.auto.floor)
	}
	if sl := slotsFor(Stage{Concurrency: 50}); sl.size != 50 || sl.auto != nil {
		t.Fatalf("concurrency 50: %d slots (adaptive %v), want 50 fixed", sl.size, sl.auto != nil)
	}
}
