// Package worker is Baton's worker runtime: one replica running the stages
// of a pipeline file against the database, beside any number of others.
//
// # Stages and slots
//
// A stage reads one queue, runs one handler (exec, http or Go: handler.go,
// exec.go, http.go) and hands each result on to the next queue. Its claim
// loop (claim.go) claims as many due jobs as it has free handler slots, in
// one statement (JobClaim: SKIP LOCKED under a lease), and starts a handler
// per job (stage.go). A slot frees when its handler returns, before its
// outcome commits, so claims overlap completions (slots.go). A stage that
// has caught up waits for a wake-up hint (LISTEN/NOTIFY, listen.go), the
// alarm of its earliest job not yet due, or its poll.
//
// # The lease token's life
//
// Every claim sets a lease deadline in database time and bumps the job's
// lease token. The claimed job (claimed, in stage.go) carries that token, and
// every later write for it is fenced by it (state = 'running' AND
// lease_token = token): heartbeats every lease/3 (lease.go), the completion
// (completer.go) or the failure (outcome.go), a release at shutdown. A write
// that matches no row means the lease moved on (the reaper gave the job back,
// or it was canceled): nothing is committed, the handler is stopped, and the
// writes are counted as fenced. No transaction is open while a handler runs.
//
// # Outcomes and the hand-off
//
// Successes are committed by a stage's completer in groups: one statement
// (JobCompleteMany) marks each job succeeded, records its history row and
// inserts the next stage's job, so a stage transition commits exactly once
// however often a handler ran. When this replica works the next stage too,
// that stage has caught up and has a free slot, the next job is inserted
// already claimed by this worker (the direct hand-off): one commit instead of
// two, and no wait for a claim. Failures retry with backoff, or go dead when
// attempts are used up or the error is Permanent.
//
// # Maintenance
//
// Every replica also runs maintenance (internal/maintenance), each step a
// single statement safe to run from every replica at once: the reaper,
// promotion of due jobs, pruning of old idempotency keys and ended
// sessions, folding the count deltas, retention and vacuum of tables with
// many dead rows. A job that lost its lease while it ran beside others runs
// alone next (crash isolation, alone.go).
//
// # From Go
//
// A Go handler's writes commit with its job's completion through CompleteTx
// (completetx.go); a Queue ties a queue's name to its payload's type for
// submits and handlers (queue.go); a Pipeline built in Go gets a file's
// defaults and checks from New.
package worker
