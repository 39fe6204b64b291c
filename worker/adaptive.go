package worker

import "time"

// adaptive sizes the slots of a stage whose file sets no concurrency, in
// the spirit of TCP Vegas: the slot count starts at DefaultConcurrency,
// grows while claims find more due jobs than free slots and the handler's
// latency holds near the lowest seen, falls back when that latency rises
// (the handler, or what it calls, is saturated), and falls to what the
// stage used when a poll interval passes with no backlog. Cheap handlers
// under a backlog get large claim batches; slow or saturating ones keep
// few slots. It is kept under the stage's mutex, as the slots are.
type adaptive struct {
	floor, ceiling int
	// The window: handler runs since the last decision, one decision per
	// slot count's worth of runs (a round trip of every slot), at least
	// minWindow.
	runs    int
	sum     time.Duration
	backlog bool // a claim of the window filled every free slot
	// base is the handler's latency when not saturated: the lowest window
	// mean seen, drawn towards the means seen at the floor.
	base time.Duration
	// peak is the most slots busy since the last poll tick, and backlogged
	// says a claim filled every free slot since then.
	peak       int
	backlogged bool
}

// minWindow is the fewest runs a decision is made on: a few runs' mean
// latency is mostly noise.
const minWindow = 32

// latencySlack is the rise of a handler's mean latency over its floor that
// is not taken as saturation: scheduling noise and pauses of a few hundred
// microseconds would otherwise stop cheap handlers from growing.
const latencySlack = time.Millisecond

func newAdaptive(ceiling int) *adaptive {
	return &adaptive{floor: min(DefaultConcurrency, ceiling), ceiling: ceiling}
}

// ran counts a handler run of the window and returns the new slot count.
func (a *adaptive) ran(d time.Duration, size int) int {
	a.runs++
	a.sum += d
	if a.runs < max(size, minWindow) {
		return size
	}
	mean := a.sum / time.Duration(a.runs)
	switch {
	case a.base == 0 || mean < a.base:
		a.base = mean
	case size == a.floor:
		// At the floor, the latency is the handler's own, not the slots'
		// doing: the base moves a quarter of the way to it each window (a
		// downstream that became slower for good would otherwise keep the
		// slots at the floor; one noisy window moves it little).
		a.base += (mean - a.base) / 4
	}
	switch {
	case mean > a.base*3/2+latencySlack:
		size = max(a.floor, size*4/5) // saturated: back off
	case a.backlog:
		size = min(a.ceiling, size+max(1, size/4)) // more due than slots, latency holds: grow
	}
	a.runs, a.sum, a.backlog = 0, 0, false
	return size
}

// claimed notes a claim's outcome: full says it filled every free slot.
func (a *adaptive) claimed(full bool) {
	a.backlog = a.backlog || full
	a.backlogged = a.backlogged || full
}

// tick is a poll interval passing: with no backlog in it, the slot count
// falls to twice the most slots it used (at least the floor).
func (a *adaptive) tick(size, busy int) int {
	if !a.backlogged {
		size = max(a.floor, min(size, 2*a.peak))
	}
	a.peak, a.backlogged = busy, false
	return size
}
