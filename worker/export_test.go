package worker

// FloorChecks is how many times w checked below its stages' claim floors.
func FloorChecks(w *Worker) int64 { return w.stats.floorChecks.Load() }

// FloorlessClaims is how many claims of w read the claim index from its front.
func FloorlessClaims(w *Worker) int64 { return w.stats.floorlessClaims.Load() }

// HasFloor says whether w's stage of queue has a claim floor.
func HasFloor(w *Worker, queue string) bool {
	s := w.stages[queue]
	return s != nil && s.floor.Load() != nil
}
