package deliver

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hookinbox/hookinbox/internal/store"
)

// maxRetryAfter caps the wait an application may ask for with Retry-After,
// so that a wrong header cannot park an event for months.
const maxRetryAfter = 24 * time.Hour

// schedule decides what follows an attempt that ended at now, for an event
// that had made attempts attempts before it (since its last replay, which
// starts the schedule over). After failed attempt k (counted
// from 1) the event waits Retry[k-1]; past the end of Retry it is dead. An
// application's Retry-After wins when it asks for longer.
func schedule(set *settings, attempts int, a store.Attempt, retryAfter time.Duration, now time.Time) store.Next {
	if a.Outcome == store.OutcomeOK {
		return store.Next{Delivered: true}
	}
	k := attempts + 1
	if k > len(set.Retry) {
		return store.Next{Dead: true}
	}
	wait := set.Retry[k-1]
	wait = max(wait, min(retryAfter, maxRetryAfter))
	return store.Next{RetryAt: now.Add(wait)}
}

// parseRetryAfter reads a Retry-After value, delay-seconds or an HTTP date
// (RFC 9110 10.2.3), as a wait from now. It returns 0 when there is none or
// it cannot be read, or when the date is past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil {
		if secs > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return max(t.Sub(now), 0)
}
