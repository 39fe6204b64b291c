package store

import (
	"fmt"
	"strings"
	"time"
)

// Forever is the retention that keeps finished jobs.
const Forever time.Duration = -1

// ParseRetention reads a retention: a duration of at least a second ("24h",
// "90m") or "forever". (The database keeps milliseconds: 999us was kept as 0
// and deleted finished jobs at the next prune.)
func ParseRetention(s string) (time.Duration, error) {
	if strings.EqualFold(strings.TrimSpace(s), "forever") {
		return Forever, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Second {
		return 0, fmt.Errorf("%w: retention %q: want a duration of at least 1s, such as 24h, or forever", ErrInvalid, s)
	}
	return d, nil
}

// RetentionMs is a retention as the database keeps it: -1 for Forever.
func RetentionMs(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return d.Milliseconds()
}

// FormatRetention shows a queue's stored retention: nil (none set: the
// replicas' default), "forever", or a duration.
func FormatRetention(ms *int64) *string {
	if ms == nil {
		return nil
	}
	s := "forever"
	if *ms >= 0 {
		s = (time.Duration(*ms) * time.Millisecond).String()
	}
	return &s
}
