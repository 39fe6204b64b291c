package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Errors of SubmitWithKey.
var (
	ErrKeyInFlight = fmt.Errorf("%w: a request with this idempotency key is still in progress", ErrConflict)
	ErrKeyReused   = fmt.Errorf("%w: idempotency key was already used for a different request", ErrInvalid)
)

// Beginner starts a transaction: a pool, or a transaction (then a savepoint).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Conn runs statements and transactions: a pool, a connection or a transaction.
type Conn interface {
	DBTX
	Beginner
}

// SubmitWithKey submits jobs under a request-level idempotency key, with the
// semantics of the IETF Idempotency-Key draft: the first use of a key submits
// the jobs; the same key with the same jobs within 24 hours returns the
// original ids (replayed = true) and submits nothing; the same key with other
// jobs fails with ErrKeyReused; and while the first request with a key is
// still in progress, others fail with ErrKeyInFlight. Concurrent duplicates
// therefore create the jobs exactly once.
func SubmitWithKey(ctx context.Context, c Conn, key string, jobs ...NewJob) (ids []int64, replayed bool, err error) {
	results, replayed, err := SubmitResults(ctx, c, key, jobs...)
	for _, r := range results {
		ids = append(ids, r.ID)
	}
	return ids, replayed, err
}

// keyed runs submit in a transaction that holds key: submit gets the ids of
// the key's earlier use with the same jobs (nil when the key is new) and
// returns the ids the key then stands for.
func keyed(ctx context.Context, b Beginner, key string, jobs []NewJob, submit func(q *Queries, prev []int64) ([]int64, error)) error {
	if key == "" || len(key) > 255 {
		return fmt.Errorf("%w: idempotency key must be 1 to 255 bytes", ErrInvalid)
	}
	if err := validate(jobs); err != nil {
		return err
	}
	fp := fingerprint(jobs)
	err := pgx.BeginFunc(ctx, b, func(tx pgx.Tx) error {
		q := New(tx)
		locked, err := q.IdempotencyTryLock(ctx, key)
		if err != nil {
			return err
		}
		if !locked {
			return ErrKeyInFlight
		}
		prev, err := q.IdempotencyGet(ctx, key)
		switch {
		case err == nil && !bytes.Equal(prev.Fingerprint, fp):
			return ErrKeyReused
		case err == nil:
			_, err := submit(q, prev.JobIds)
			return err
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		ids, err := submit(q, nil)
		if err != nil {
			return err
		}
		return q.IdempotencyPut(ctx, IdempotencyPutParams{Key: key, Fingerprint: fp, JobIds: ids})
	})
	if err != nil {
		if errors.Is(err, ErrKeyInFlight) || errors.Is(err, ErrKeyReused) || errors.Is(err, ErrInvalid) {
			return err
		}
		return fmt.Errorf("submitting with idempotency key: %w", MapError(err))
	}
	return nil
}

// fingerprint identifies a submit request by what it asks for, so the same
// jobs written with other JSON whitespace count as the same request.
func fingerprint(jobs []NewJob) []byte {
	h := sha256.New()
	var compact bytes.Buffer
	for _, j := range jobs {
		compact.Reset()
		_ = json.Compact(&compact, j.Payload)
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00%d\x00%d\x00%d\x00%s\x00%d\x00%v\x00", j.Queue, compact.Len(), j.Priority, j.Delay,
			j.RunAt.UnixNano(), j.MaxAttempts, j.UniqueKey, j.UniqueFor, j.UniqueStates)
		h.Write(compact.Bytes())
	}
	return h.Sum(nil)
}
