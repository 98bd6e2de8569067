package deliver

import (
	"sync"
	"time"

	"github.com/hookinbox/hookinbox/internal/store"
)

// Breaker states, as BreakerState.State reports them.
const (
	breakerClosed   = "closed"
	breakerOpen     = "open"
	breakerHalfOpen = "half_open"
)

// breaker is one inbox's circuit breaker. After threshold consecutive
// attempts that say the application is unreachable or broken, it opens: the
// dispatcher claims nothing for a cooldown, so the backlog's retries are not
// spent on a backend known to be down. Then it is half open: one event at a
// time probes the backend. An answer that shows the application alive closes
// it and the backlog drains at the inbox's concurrency; another failure
// reopens it with twice the cooldown, up to maxCooldown.
type breaker struct {
	threshold   int
	minCooldown time.Duration
	maxCooldown time.Duration

	mu       sync.Mutex
	st       string
	since    time.Time
	failures int
	cooldown time.Duration // of the current opening
	until    time.Time     // end of the current opening
}

func newBreaker(threshold int, minCooldown, maxCooldown time.Duration) *breaker {
	return &breaker{
		threshold:   threshold,
		minCooldown: minCooldown,
		maxCooldown: maxCooldown,
		st:          breakerClosed,
		since:       time.Now(),
	}
}

// breakerFailure tells whether an outcome says the application is down or
// broken. A redirect or a 4xx is an answer from a live application about
// one event: it says nothing about the others.
func breakerFailure(outcome string) bool {
	switch outcome {
	case store.OutcomeConnect, store.OutcomeTimeout, store.OutcomeReset,
		store.OutcomeTLS, store.OutcomeServerError:
		return true
	}
	return false
}

// allow says how many attempts may be in flight now: -1 for no limit of the
// breaker's own, 1 while half open, 0 while open (until says until when).
// The cooldown's end moves an open breaker to half open, reported by
// halfOpened.
func (b *breaker) allow(now time.Time) (limit int, until time.Time, halfOpened bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.st {
	case breakerOpen:
		if now.Before(b.until) {
			return 0, b.until, false
		}
		b.st, b.since = breakerHalfOpen, now
		return 1, time.Time{}, true
	case breakerHalfOpen:
		return 1, time.Time{}, false
	}
	return -1, time.Time{}, false
}

// transition is what an attempt's result did to the breaker.
type transition int

const (
	unchanged transition = iota
	opened               // closed -> open
	reopened             // half open (the probe failed) -> open
	closed               // open or half open -> closed
)

// record counts an attempt's outcome.
func (b *breaker) record(outcome string, now time.Time) transition {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !breakerFailure(outcome) {
		b.failures = 0
		if b.st == breakerClosed {
			return unchanged
		}
		// Even an attempt started before the breaker opened counts: the
		// application answered, so it is up.
		b.st, b.since, b.cooldown, b.until = breakerClosed, now, 0, time.Time{}
		return closed
	}
	b.failures++
	switch b.st {
	case breakerClosed:
		if b.failures < b.threshold {
			return unchanged
		}
		b.cooldown = b.minCooldown
		b.st, b.since, b.until = breakerOpen, now, now.Add(b.cooldown)
		return opened
	case breakerHalfOpen:
		b.cooldown = min(2*b.cooldown, b.maxCooldown)
		b.st, b.since, b.until = breakerOpen, now, now.Add(b.cooldown)
		return reopened
	}
	// Open: an attempt that was in flight when it opened; the cooldown
	// already accounts for the backend being down.
	return unchanged
}

// reset closes the breaker, and tells whether it was not closed: the
// inbox now forwards to another application, which it knows nothing about.
func (b *breaker) reset(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	was := b.st
	b.st, b.failures, b.cooldown, b.until = breakerClosed, 0, 0, time.Time{}
	if was != breakerClosed {
		b.since = now
		return true
	}
	return false
}

// endCooldown ends the current opening now, so that the next allow makes
// the breaker half open, and tells whether it was open.
func (b *breaker) endCooldown(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.st != breakerOpen {
		return false
	}
	b.until = now
	return true
}

// state reports the breaker for the admin API.
func (b *breaker) state() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return BreakerState{State: b.st, Since: b.since, Failures: b.failures}
}

// reopenAt is when the current opening ends.
func (b *breaker) reopenAt() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.until
}
