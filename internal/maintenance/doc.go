// Package maintenance keeps the job tables healthy from every replica at
// once, without a leader: each step is a single guarded statement (SKIP
// LOCKED, or a delete each row of which one replica wins), a step a file:
//
//   - reaper.go: expired leases go back to their queue
//   - promotion.go: due delayed and retrying jobs become available
//   - expired.go: old idempotency keys and ended dashboard sessions go
//   - counts.go: the count deltas are folded into the counters
//   - retention.go: finished jobs past retention are pruned (replicas side by side)
//   - vacuum.go: tables with many dead rows are vacuumed
//   - readers.go: reporting sessions past their limits are ended
//
// Run (maintenance.go) is what serve and every worker run.
package maintenance
