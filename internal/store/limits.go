package store

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on submitted jobs.
const (
	MaxPriority     = 100
	MaxMaxAttempts  = 1000
	MaxDelay        = 365 * 24 * time.Hour
	DefaultAttempts = 5
	// MaxPayload caps a payload or a handler's result: its bytes, and its
	// length once PostgreSQL writes its numbers out in full (jsonb keeps
	// 1e131071 in a few bytes and writes 131,072 digits on every read). The
	// API's own cap on a submitted payload is lower (256 KiB by default).
	MaxPayload = 16 << 20
	// MaxJobOverride caps a job's own timeout and lease; MinJobTimeout and
	// MinJobLease are a pipeline file's floors for a stage's.
	MaxJobOverride = 24 * time.Hour
	MinJobTimeout  = 10 * time.Millisecond
	MinJobLease    = 100 * time.Millisecond
	// MaxGlobalConcurrency bounds a queue's global concurrency.
	MaxGlobalConcurrency = 1000000
	// MaxGroupConcurrency bounds a stage's group concurrency, and
	// MaxGroupWeight a group's weight in fair shares.
	MaxGroupConcurrency = 10000
	MaxGroupWeight      = 1000
	// MaxGroupLength bounds a job's group, in characters.
	MaxGroupLength = 128
	// MaxTags and MaxTagLength bound a job's tags (the length in characters).
	MaxTags      = 16
	MaxTagLength = 64
)

var queueNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// QueueNameRule says what a queue name may be, for error messages.
const QueueNameRule = "a queue name must be 1 to 63 characters of a-z, 0-9, '_', '.' or '-', starting with a letter or digit"

// ValidQueueName reports whether name can name a queue (see QueueNameRule).
func ValidQueueName(name string) bool { return queueNameRE.MatchString(name) }

// ParseID reads a job id written in plain decimal: no sign, no leading
// zeros, at most a positive int64.
func ParseID(s string) (int64, bool) {
	if s == "" || s[0] < '1' || s[0] > '9' || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil
}

// ValidateQueueName returns an ErrInvalid error unless name can name a queue.
func ValidateQueueName(name string) error {
	if !ValidQueueName(name) {
		return fmt.Errorf("%w: queue %q: %s", ErrInvalid, name, QueueNameRule)
	}
	return nil
}

// ValidTag reports whether tag can tag a job: 1 to MaxTagLength characters
// of UTF-8 text without control characters.
func ValidTag(tag string) bool {
	return tag != "" && utf8.ValidString(tag) && utf8.RuneCountInString(tag) <= MaxTagLength &&
		!strings.ContainsFunc(tag, unicode.IsControl)
}

// Rate is a limit on a queue's claims: at most Count per Period (a second
// or a minute), over every replica. Its bucket holds one second's worth of
// the rate (at least one claim): that is its largest burst.
type Rate struct {
	Count  int32
	Period time.Duration
}

// MaxRateCount bounds a rate's count.
const MaxRateCount = 1000000

// RateRule says how a rate is written, for error messages.
const RateRule = `a rate is "N/s" or "N/m" (N claims per second or per minute; N from 1 to 1000000)`

// ParseRate reads a rate written "20/s" or "600/m" (also "20/second",
// "600/minute"); "" is no rate (the zero Rate).
func ParseRate(s string) (Rate, error) {
	if s == "" {
		return Rate{}, nil
	}
	n, unit, ok := strings.Cut(s, "/")
	count, err := strconv.ParseInt(n, 10, 32)
	var period time.Duration
	switch unit {
	case "s", "sec", "second":
		period = time.Second
	case "m", "min", "minute":
		period = time.Minute
	}
	if !ok || err != nil || n != strconv.FormatInt(count, 10) || count < 1 || count > MaxRateCount || period == 0 {
		return Rate{}, fmt.Errorf("%w: rate %q: %s", ErrInvalid, s, RateRule)
	}
	return Rate{Count: int32(count), Period: period}, nil
}

// String writes r as ParseRate reads it ("" for no rate).
func (r Rate) String() string {
	switch r.Period {
	case time.Second:
		return fmt.Sprintf("%d/s", r.Count)
	case time.Minute:
		return fmt.Sprintf("%d/m", r.Count)
	}
	return ""
}

// PeriodMs is the rate's period in milliseconds (0 for no rate), as
// baton.queues.rate_period_ms holds it.
func (r Rate) PeriodMs() int32 { return int32(r.Period.Milliseconds()) }

// RateOf reads a rate as baton.queues holds it (0, 0: none).
func RateOf(count, periodMs int32) Rate {
	if count <= 0 || periodMs <= 0 {
		return Rate{}
	}
	return Rate{Count: count, Period: time.Duration(periodMs) * time.Millisecond}
}
