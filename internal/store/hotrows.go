package store

import "context"

// The two statements a worker runs for every batch of jobs, with their rows
// scanned into a slice sized once for the batch. sqlc's JobClaim and
// JobCompleteMany (the same statements, the same rows) append each row to a
// slice grown from empty, copying a ~200-byte JobClaimRow through every
// doubling: with the row that escapes to the heap for its Scan, that was a
// quarter of the bytes a worker allocated per job, and the garbage
// collector's work with them (docs/benchmarks.md, "Fewer bytes per job").
// A column added to either statement fails every claim or completion here
// at once ("number of field descriptions must equal number of
// destinations"), so the tests of both catch a drift.

// JobClaimBatch is JobClaim with room for max_jobs rows (at most 1,024) made
// at its first row.
func (q *Queries) JobClaimBatch(ctx context.Context, arg JobClaimParams) ([]JobClaimRow, error) {
	rows, err := q.db.Query(ctx, jobClaim,
		arg.CheckPayloads,
		arg.MaxJobs,
		arg.QueueName,
		arg.GlobalConcurrency,
		arg.FloorPriority,
		arg.FloorRunAt,
		arg.MaxAttempts,
		arg.MaxJobLeaseMs,
		arg.LeaseMs,
		arg.WorkerID,
	)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var items []JobClaimRow
	for rows.Next() {
		if items == nil { // not before a row: an idle poll's claim finds none
			items = make([]JobClaimRow, 0, min(max(int(arg.MaxJobs), 1), 1024))
		}
		items = append(items, JobClaimRow{})
		i := &items[len(items)-1]
		if err := rows.Scan(
			&i.ID,
			&i.Queue,
			&i.Payload,
			&i.Priority,
			&i.Attempts,
			&i.MaxAttempts,
			&i.LeaseToken,
			&i.RunAt,
			&i.CreatedAt,
			&i.StartedAt,
			&i.ParentID,
			&i.TraceParent,
			&i.Tags,
			&i.TimeoutMs,
			&i.LeaseMs,
			&i.GroupKey,
		); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return items, nil
}

// JobCompleteManyBatch is JobCompleteMany with room for a row per job made up
// front.
func (q *Queries) JobCompleteManyBatch(ctx context.Context, arg JobCompleteManyParams) ([]JobCompleteManyRow, error) {
	rows, err := q.db.Query(ctx, jobCompleteMany,
		arg.Ids,
		arg.LeaseTokens,
		arg.Results,
		arg.NextQueues,
		arg.TraceParents,
		arg.Direct,
		arg.RunUs,
		arg.WorkerID,
		arg.FanOut,
		arg.JoinStage,
		arg.NextMaxAttempts,
		arg.NextLeaseMs,
	)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	items := make([]JobCompleteManyRow, 0, len(arg.Ids))
	for rows.Next() {
		items = append(items, JobCompleteManyRow{})
		i := &items[len(items)-1]
		if err := rows.Scan(
			&i.ID,
			&i.LeaseToken,
			&i.NextID,
			&i.NextClaimed,
			&i.NextCreatedAt,
			&i.NextPayload,
			&i.JoinReady,
		); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return items, nil
}
