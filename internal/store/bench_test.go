package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
)

// Benchmarks of the hot statements, per job, at several batch sizes:
// go test -run XXX -bench . ./db/ | tee new.txt; benchstat old.txt new.txt

func BenchmarkSubmit(b *testing.B) {
	for _, variant := range []string{"plain", "max_backlog", "grouped"} {
		limited := variant == "max_backlog"
		for _, n := range []int{1, 100, 1000} {
			b.Run(fmt.Sprintf("%s/batch=%d", variant, n), func(b *testing.B) {
				pool := dbtest.New(b)
				if limited { // a limit never reached: the cost of the turn and the count
					most := int32(1 << 30)
					_, err := store.New(pool).QueueSet(context.Background(), store.QueueSetParams{Name: "a", MaxBacklog: &most, SetMaxBacklog: true})
					require.NoError(b, err)
				}
				jobs := make([]store.NewJob, n)
				for i := range jobs {
					jobs[i] = store.NewJob{Queue: "a", Payload: []byte(`{"n":1}`)}
					if variant == "grouped" { // the group indexes take each job
						jobs[i].Group = fmt.Sprintf("g%d", i%100)
					}
				}
				b.ResetTimer()
				for i := 0; i < b.N; i += n {
					_, err := store.Submit(context.Background(), pool, jobs...)
					require.NoError(b, err)
				}
			})
		}
	}
}

// BenchmarkClaimComplete claims n jobs and completes them with a hand-off,
// the two statements a stage runs per batch; limited, as a queue with a
// global concurrency claims: holding the queue's row first, in a
// transaction, and counting its running jobs.
func BenchmarkClaimComplete(b *testing.B) {
	for _, limited := range []bool{false, true} {
		for _, n := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("limited=%v/batch=%d", limited, n), func(b *testing.B) {
				pool := dbtest.New(b)
				ctx := context.Background()
				jobs := make([]store.NewJob, b.N)
				for i := range jobs {
					jobs[i] = store.NewJob{Queue: "a", Payload: []byte(`{"n":1}`)}
				}
				for i := 0; i < len(jobs); i += 5000 {
					_, err := store.Submit(ctx, pool, jobs[i:min(i+5000, len(jobs))]...)
					require.NoError(b, err)
				}
				_, err := pool.Exec(ctx, "VACUUM ANALYZE baton.jobs")
				require.NoError(b, err)
				claim := store.JobClaimParams{QueueName: "a", MaxJobs: int32(n), LeaseMs: 30000, WorkerID: "bench", MaxAttempts: 5}
				b.ResetTimer()
				for done := 0; done < b.N; {
					var rows []store.JobClaimRow
					if limited {
						claim.GlobalConcurrency = int32(n)
						err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
							if _, err := store.New(tx).QueueHoldForClaim(ctx, store.QueueHoldForClaimParams{Name: "a"}); err != nil {
								return err
							}
							rows, err = store.New(tx).JobClaim(ctx, claim)
							return err
						})
					} else {
						rows, err = store.New(pool).JobClaim(ctx, claim)
					}
					require.NoError(b, err)
					p := store.JobCompleteManyParams{}
					for _, r := range rows {
						p.Ids = append(p.Ids, r.ID)
						p.LeaseTokens = append(p.LeaseTokens, r.LeaseToken)
						p.Results = append(p.Results, `{"n":1}`)
						p.NextQueues = append(p.NextQueues, "b")
					}
					_, err = store.New(pool).JobCompleteMany(ctx, p)
					require.NoError(b, err)
					done += len(rows)
				}
			})
		}
	}
}

// BenchmarkClaimGrouped claims batches of 10 as a stage with fair shares or
// a group concurrency does (JobClaimGrouped, after holding the queue's row)
// and completes them, with jobs spread over 10, 1,000 or 10,000 groups
// that all have due jobs: what a grouped claim costs as groups grow.
func BenchmarkClaimGrouped(b *testing.B) {
	for _, mode := range []string{"fair", "group_concurrency=2"} {
		for _, groups := range []int{10, 1000, 10000} {
			b.Run(fmt.Sprintf("%s/groups=%d", mode, groups), func(b *testing.B) {
				pool := dbtest.New(b)
				ctx := context.Background()
				jobs := make([]store.NewJob, b.N+2*groups)
				for i := range jobs {
					jobs[i] = store.NewJob{Queue: "a", Payload: []byte(`{"n":1}`), Group: fmt.Sprintf("g%d", i%groups)}
				}
				for i := 0; i < len(jobs); i += 5000 {
					_, err := store.Submit(ctx, pool, jobs[i:min(i+5000, len(jobs))]...)
					require.NoError(b, err)
				}
				_, err := pool.Exec(ctx, "VACUUM ANALYZE baton.jobs")
				require.NoError(b, err)
				claim := store.JobClaimGroupedParams{QueueName: "a", MaxJobs: 10, LeaseMs: 30000, WorkerID: "bench", MaxAttempts: 5,
					Fair: mode == "fair"}
				if !claim.Fair {
					claim.GroupConcurrency = 2
				}
				b.ResetTimer()
				for done := 0; done < b.N; {
					var rows []store.JobClaimGroupedRow
					err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
						if _, err := store.New(tx).QueueHoldForClaim(ctx, store.QueueHoldForClaimParams{Name: "a"}); err != nil {
							return err
						}
						rows, err = store.New(tx).JobClaimGrouped(ctx, claim)
						return err
					})
					require.NoError(b, err)
					require.NotEmpty(b, rows)
					p := store.JobCompleteManyParams{}
					for _, r := range rows {
						p.Ids = append(p.Ids, r.ID)
						p.LeaseTokens = append(p.LeaseTokens, r.LeaseToken)
						p.Results = append(p.Results, `{"n":1}`)
						p.NextQueues = append(p.NextQueues, "b")
					}
					_, err = store.New(pool).JobCompleteMany(ctx, p)
					require.NoError(b, err)
					done += len(rows)
				}
			})
		}
	}
}
