package worker

import "time"

// slots is a stage's account of its handler slots, kept under the stage's
// mutex. A slot is busy from a job's claim (or from its reservation for a
// direct hand-off) until its handler returns, not until its outcome commits,
// so that the next claim overlaps the completion commit. The jobs still
// held for their commit are bounded too: claimed jobs not yet recorded
// (held) never pass twice the slot count.
type slots struct {
	size     int // the stage's concurrency, or its adaptive slot count
	busy     int // handlers running, and slots reserved for direct hand-offs
	reserved int // slots reserved for direct hand-offs, not yet started
	// auto sizes the slots of a stage with no concurrency set (adaptive.go);
	// nil: size is fixed.
	auto *adaptive
	// meanRun is the handler's recent mean run time (a moving average over
	// about 16 runs), and meanPayload the recent claims' mean payload
	// bytes: they bound the jobs claimed ahead.
	meanRun     time.Duration
	meanPayload int
}

// slotsFor returns a stage's slots: fixed at its concurrency, or adaptive.
func slotsFor(st Stage) slots {
	if st.Concurrency > 0 {
		return slots{size: st.Concurrency}
	}
	a := newAdaptive(st.MaxConcurrency)
	return slots{size: a.floor, auto: a}
}

// free is how many jobs may be claimed now: the free slots, and up to
// ahead more to wait for a slot (ahead.go) less the queued ones waiting
// already; with held claimed jobs whose outcome is not recorded yet. A
// limited stage (whose claims count the queue's running jobs) claims only
// for slots whose last job is recorded, and never ahead: the database
// counts a job running until then, and a claim made before would find its
// slot taken (or, in a fair stage, would share the slots by what has not
// committed yet).
func (sl slots) free(held, queued, ahead int, limited bool) int {
	if limited {
		return max(0, min(sl.size-sl.busy, sl.size-held-sl.reserved))
	}
	// An adaptive size may fall below busy.
	return max(0, min(sl.size-sl.busy+ahead-queued, 2*sl.size+ahead-held-sl.reserved))
}

// ahead is how many claimed jobs may wait for a slot: as many as the slots
// run in span at the handler's recent pace, at most maxAhead, and no more
// than maxAheadBytes of payloads at the recent claims' mean. None before
// the pace is known.
func (sl slots) ahead(span time.Duration) int {
	if sl.meanRun == 0 {
		return 0
	}
	n := min(maxAhead, int64(sl.size)*int64(span)/int64(max(sl.meanRun, time.Microsecond)))
	return int(min(n, maxAheadBytes/int64(max(sl.meanPayload, 1))))
}

// claimedBytes notes a claim's payload bytes, of n jobs.
func (sl *slots) claimedBytes(bytes, n int) {
	mean := bytes / n
	if sl.meanPayload == 0 {
		sl.meanPayload = mean
	} else {
		sl.meanPayload += (mean - sl.meanPayload) / 4
	}
}

// start counts a claimed job's handler starting: in a slot of its own, or
// in one reserved for it.
func (sl *slots) start(fromReserve bool) {
	if fromReserve {
		sl.reserved-- // reserve counted it busy already
	} else {
		sl.busy++
		sl.used()
	}
}

// end counts a handler returning after it ran for d, and returns the
// slot count.
func (sl *slots) end(d time.Duration) int {
	sl.busy--
	if sl.meanRun == 0 {
		sl.meanRun = max(d, 1)
	} else {
		sl.meanRun += (d - sl.meanRun) / 16
	}
	if sl.auto != nil {
		sl.size = sl.auto.ran(d, sl.size)
	}
	return sl.size
}

// reserve holds k slots for direct hand-offs; unreserve gives back k that
// no job took.
func (sl *slots) reserve(k int) {
	sl.busy += k
	sl.reserved += k
	sl.used()
}

func (sl *slots) unreserve(k int) { sl.busy -= k; sl.reserved -= k }

func (sl *slots) used() {
	if sl.auto != nil {
		sl.auto.peak = max(sl.auto.peak, sl.busy)
	}
}

// claimed notes a claim that filled every free slot (full) or not.
func (sl *slots) claimed(full bool) {
	if sl.auto != nil {
		sl.auto.claimed(full)
	}
}

// goroutines is how many handler goroutines the stage may keep: one a
// slot, and as many again for successes that wait for room in the
// completer's queue while a commit is slow (a goroutine does not wait for
// its job's commit: the completer settles the job).
func (sl slots) goroutines() int { return 2 * sl.size }

// tick is a poll interval passing.
func (sl *slots) tick() {
	if sl.auto != nil {
		sl.size = sl.auto.tick(sl.size, sl.busy)
	}
}

// free is how many jobs the stage may claim now.
func (s *stage) free() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.freeLocked()
}

func (s *stage) freeLocked() int {
	if s.w.aloneRun.Load() != nil {
		return 0 // an isolated job is held or runs alone on this worker (looking for one stops nothing)
	}
	ahead := s.aheadLocked()
	if len(s.ahead) > ahead/2 {
		return 0 // claim again when half of them have started, in one batch
	}
	return s.slots.free(len(s.running), len(s.ahead), ahead, s.limited())
}

// reserve holds up to n free slots for jobs that a completion in this
// process hands off to this stage already claimed (a direct hand-off). It
// holds none while the stage has a backlog, so that jobs already waiting in
// the queue (by priority, from every replica) go first, and none once
// shutdown began. Each held slot is later started or unreserved.
func (s *stage) reserve(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || !s.caughtUp.Load() || s.limited() {
		return 0 // a limited stage's jobs are claimed, taking turns: never handed straight in
	}
	k := max(0, min(n, s.freeLocked()))
	s.slots.reserve(k)
	s.handlers.Add(k) // the drain at shutdown waits for reserved slots too
	return k
}

// unreserve gives back k reserved slots that no job took.
func (s *stage) unreserve(k int) {
	if k == 0 {
		return
	}
	s.mu.Lock()
	s.slots.unreserve(k)
	s.mu.Unlock()
	for range k {
		s.handlers.Done()
	}
	signal(s.freed)
	signal(s.w.settled)
}

// noteClaim tells an adaptive stage's slots whether a claim filled every
// free slot: a backlog they may grow for.
func (s *stage) noteClaim(full bool) {
	s.mu.Lock()
	s.slots.claimed(full)
	s.mu.Unlock()
}

// pollTick tells an adaptive stage's slots that a poll interval passed,
// and retires the handler goroutines waiting beyond the slot count.
func (s *stage) pollTick() {
	s.mu.Lock()
	s.slots.tick()
	size, surplus := s.slots.size, s.goroutines-s.slots.goroutines()
	s.mu.Unlock()
	s.metrics.slots.Set(float64(size))
	for range surplus {
		select {
		case s.retire <- struct{}{}:
		default:
			return // none waits: the busy ones end when their jobs do
		}
	}
}
