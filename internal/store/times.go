package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// The times every reader can write: RFC 3339 (and so JSON) has years 0000
// to 9999 only. A timestamptz outside them, or ±infinity, can only come from
// SQL run by hand (submits refuse such a run_at), and reads as the nearest
// end of this range, so that one such row never fails a read or a list.
var (
	MinTime = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

// The run_at a submit may ask for, in UTC.
var (
	MinRunAt = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxRunAt = MaxTime
)

// ValidRunAt reports whether t may be a job's run_at: between MinRunAt and
// MaxRunAt once in UTC (9999-12-31T23:59:59-01:00 is the year 10000).
func ValidRunAt(t time.Time) bool {
	return !t.Before(MinRunAt) && !t.After(MaxRunAt)
}

// AfterConnect prepares a new connection for Baton's queries: times read
// from the database are always ones every reader can write (MinTime to
// MaxTime). Connect sets it; a pool built another way should too
// (pgxpool.Config.AfterConnect).
func AfterConnect(_ context.Context, conn *pgx.Conn) error {
	conn.TypeMap().RegisterType(&pgtype.Type{Name: "timestamptz", OID: pgtype.TimestamptzOID, Codec: &timestamptzCodec{}})
	return nil
}

// timestamptzCodec is pgx's, except that it scans into a time.Time without
// failing on ±infinity (pgx refuses them) and clamps to MinTime..MaxTime.
type timestamptzCodec struct{ pgtype.TimestamptzCodec }

func (c *timestamptzCodec) PlanScan(m *pgtype.Map, oid uint32, format int16, target any) pgtype.ScanPlan {
	if _, ok := target.(*time.Time); !ok {
		return c.TimestamptzCodec.PlanScan(m, oid, format, target)
	}
	next := c.TimestamptzCodec.PlanScan(m, oid, format, (*readableTime)(nil))
	if next == nil {
		return nil
	}
	return scanReadable{next}
}

type scanReadable struct{ next pgtype.ScanPlan }

func (p scanReadable) Scan(src []byte, dst any) error {
	return p.next.Scan(src, (*readableTime)(dst.(*time.Time)))
}

// readableTime receives a timestamptz for a time.Time.
type readableTime time.Time

func (t *readableTime) ScanTimestamptz(v pgtype.Timestamptz) error {
	switch {
	case !v.Valid:
		return errors.New("cannot scan NULL into *time.Time")
	case v.InfinityModifier == pgtype.Infinity, v.Time.After(MaxTime):
		*t = readableTime(MaxTime)
	case v.InfinityModifier == pgtype.NegativeInfinity, v.Time.Before(MinTime):
		*t = readableTime(MinTime)
	default:
		*t = readableTime(v.Time)
	}
	return nil
}
