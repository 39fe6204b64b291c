package db

import (
	"fmt"
	"strings"
	"time"
)

// Forever is the retention that keeps finished jobs.
const Forever time.Duration = -1

// ParseRetention reads a retention: a positive duration ("24h", "90m") or
// "forever".
func ParseRetention(s string) (time.Duration, error) {
	if strings.EqualFold(strings.TrimSpace(s), "forever") {
		return Forever, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%w: retention %q: want a positive duration such as 24h, or forever", ErrInvalid, s)
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
