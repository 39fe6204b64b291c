package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// The two statements a worker runs for every batch of jobs, with their rows
// scanned into a slice sized once for the batch. sqlc's JobClaim and
// JobCompleteMany (the same statements, the same rows) append each row to a
// slice grown from empty, copying a ~200-byte JobClaimRow through every
// doubling: with the row that escapes to the heap for its Scan, that was a
// quarter of the bytes a worker allocated per job, and the garbage
// collector's work with them (docs/benchmarks.md, "Fewer bytes per job").
// A column added to either statement fails every claim or completion here
// at once ("number of field descriptions must equal number of
// destinations"), so the tests of both catch a drift. Both also run with
// the server's generic plan (genericRows).

// JobClaimBatch is JobClaim with room for max_jobs rows (at most 1,024) made
// at its first row.
func (q *Queries) JobClaimBatch(ctx context.Context, arg JobClaimParams) ([]JobClaimRow, error) {
	rows, err := genericRows(ctx, q.db, jobClaim,
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
	rows, err := genericRows(ctx, q.db, jobCompleteMany,
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

// genericRows runs a hot statement with the server's generic plan: in one
// round trip, set_config makes plan_cache_mode force_generic_plan for the
// statement's own transaction (the implicit one of the pipeline, so the
// setting ends with it). Left to choose, the server plans a statement again
// while its generic plan looks dearer than the custom plans so far, and a
// run's first completions are small batches (docs/benchmarks.md, "Generic
// plans for the hot statements"); both statements are written so that any
// plan reads through the indexes (design.md, "Indexes"). That estimate
// grows with the backlog (a claim's generic plan costs 20,000 at 2 million
// waiting jobs: its LIMIT is taken for a tenth of them), and past
// jit_above_cost the server would compile every claim, so jit is off for
// the statement too. In a transaction the statement runs as it is: the
// settings would outlive it there.
func genericRows(ctx context.Context, db DBTX, sql string, args ...any) (pgx.Rows, error) {
	p, ok := db.(interface {
		SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
	})
	if _, tx := db.(pgx.Tx); tx || !ok {
		return db.Query(ctx, sql, args...)
	}
	b := &pgx.Batch{}
	b.Queue("SELECT set_config('plan_cache_mode', 'force_generic_plan', true), set_config('jit', 'off', true)")
	b.Queue(sql, args...)
	br := p.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

// batchRows are the rows of a batch's last statement: once read to the end
// (or closed) they end the batch, whose commit's error Err then reports,
// and free its connection.
type batchRows struct {
	pgx.Rows
	br  pgx.BatchResults
	err error
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *batchRows) Close() {
	r.Rows.Close()
	if r.br != nil {
		r.err, r.br = r.br.Close(), nil
	}
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}
