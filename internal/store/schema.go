package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrSchema is the error of a database whose schema this binary cannot run
// against: none, a failed migration, or a version behind the binary's, or
// ahead of it and not compatible with it.
var ErrSchema = errors.New("schema not ready")

// Schema is where a database's schema stands against this binary.
type Schema struct {
	Applied int  // the applied migration; 0 for none
	Dirty   bool // it failed half-way
	Binary  int  // the newest migration this binary holds
	// CompatibleSince is, for a schema newer than the binary, the oldest
	// binary it accepts (by its newest migration; see migration 22).
	CompatibleSince int
}

// ReadSchema reads where the database's schema stands.
func ReadSchema(ctx context.Context, conn DBTX) (Schema, error) {
	versions, err := MigrationVersions()
	if err != nil {
		return Schema{}, err
	}
	s := Schema{Binary: versions[len(versions)-1]}
	q := New(conn)
	v, err := q.SchemaVersion(ctx)
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows), errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UndefinedTable:
		return s, nil
	case err != nil:
		return s, fmt.Errorf("reading the schema's version: %w", err)
	}
	s.Applied, s.Dirty = int(v.Version), v.Dirty
	if s.Applied > s.Binary && !s.Dirty {
		since, err := q.SchemaCompatibleSince(ctx)
		if err != nil {
			return s, fmt.Errorf("reading which binaries the schema accepts: %w", err)
		}
		s.CompatibleSince = int(since)
	}
	return s, nil
}

// Check says whether this binary can run against the schema: nil, or an
// error (ErrSchema) saying what is wrong and what to run.
func (s Schema) Check() error {
	switch {
	case s.Applied == 0:
		return fmt.Errorf("%w: the database has no Baton schema yet; run baton migrate up", ErrSchema)
	case s.Dirty:
		return fmt.Errorf("%w: migration %d failed half-way (dirty); finish or undo it by hand, then baton migrate force N", ErrSchema, s.Applied)
	case s.Applied < s.Binary:
		return fmt.Errorf("%w: the schema is at migration %d and this binary needs %d; run this release's baton migrate up", ErrSchema, s.Applied, s.Binary)
	case s.Applied > s.Binary && s.CompatibleSince > s.Binary:
		return fmt.Errorf("%w: the schema is at migration %d, which needs a binary from migration %d on, and this one has %d; upgrade baton",
			ErrSchema, s.Applied, s.CompatibleSince, s.Binary)
	}
	return nil
}

// Waitable reports whether a migration still to run can make the schema
// usable: none yet, one failed, or behind. A schema ahead of the binary and
// not compatible with it waits for a newer binary instead.
func (s Schema) Waitable() bool { return s.Applied <= s.Binary }
