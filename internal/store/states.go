package store

// The job states are generated from the schema's enum (sqlc: JobState,
// AllJobStateValues, JobState.Valid); this file adds what they mean.

// Terminal reports whether a job in this state is finished: succeeded, dead
// or canceled.
func (s JobState) Terminal() bool {
	return s == BatonJobStateSucceeded || s == BatonJobStateDead || s == BatonJobStateCanceled
}

// Count is how many of the queue's jobs are in state s: the one place the
// view's columns are matched to the states.
func (q QueueSummaryRow) Count(s JobState) int64 {
	switch s {
	case BatonJobStateScheduled:
		return q.Scheduled
	case BatonJobStateAvailable:
		return q.Available
	case BatonJobStateRunning:
		return q.Running
	case BatonJobStateRetrying:
		return q.Retrying
	case BatonJobStateSucceeded:
		return q.Succeeded
	case BatonJobStateDead:
		return q.Dead
	case BatonJobStateCanceled:
		return q.Canceled
	}
	return 0
}
