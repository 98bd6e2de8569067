// Package throttle spaces out the log lines of a fault that repeats: a
// store that fails fails every request and every delivery, and one line
// every few seconds says as much as thousands.
package throttle

import (
	"sync/atomic"
	"time"
)

// Every lets one line through per period and counts the ones it holds back.
// The zero value lets every line through; use New.
type Every struct {
	period     time.Duration
	last       atomic.Int64 // unix nanos of the last line let through
	suppressed atomic.Int64
}

// New returns an Every that lets one line through per period.
func New(period time.Duration) *Every { return &Every{period: period} }

// Allow tells whether a line may be logged now, and if so how many were
// held back since the last one.
func (e *Every) Allow(now time.Time) (ok bool, suppressed int64) {
	t := now.UnixNano()
	last := e.last.Load()
	if last != 0 && t-last < int64(e.period) || !e.last.CompareAndSwap(last, t) {
		e.suppressed.Add(1)
		return false, 0
	}
	return true, e.suppressed.Swap(0)
}
