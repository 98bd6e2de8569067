package deliver

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hookinbox/hookinbox/internal/store"
)

// fakeQueue is an in-memory Queue with the store's semantics: due times,
// leases, and ordered head-of-line claims. It also checks that delivery
// keeps the contract: never two leases on one event, Record and Release
// only on a leased event.
type fakeQueue struct {
	t testing.TB

	mu      sync.Mutex
	seq     int
	events  map[string]*fakeEvent
	order   map[string][]string // inbox -> ids in arrival order
	head    map[string]int      // inbox -> index in order before which all are finished
	wake    map[string]chan struct{}
	claims  int
	release int
}

type fakeEvent struct {
	store.Event
	leased   bool
	attempts []store.Attempt
	nexts    []store.Next
}

func newFakeQueue(t testing.TB) *fakeQueue {
	return &fakeQueue{
		t:      t,
		events: make(map[string]*fakeEvent),
		order:  make(map[string][]string),
		head:   make(map[string]int),
		wake:   make(map[string]chan struct{}),
	}
}

// add enqueues an event due now, as the handler would, and returns its id.
func (q *fakeQueue) add(inbox string, e store.Event) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	if e.ID == "" {
		e.ID = fmt.Sprintf("ev%04d", q.seq)
	}
	e.Inbox = inbox
	if e.ReceivedAt.IsZero() {
		e.ReceivedAt = time.Now()
	}
	if e.Method == "" {
		e.Method = http.MethodPost
	}
	if e.Header == nil {
		e.Header = http.Header{}
	}
	e.State = store.Pending
	e.NextAttemptAt = e.ReceivedAt
	q.events[e.ID] = &fakeEvent{Event: e}
	q.order[inbox] = append(q.order[inbox], e.ID)
	q.signalLocked(inbox)
	return e.ID
}

func (q *fakeQueue) wakeLocked(inbox string) chan struct{} {
	c, ok := q.wake[inbox]
	if !ok {
		c = make(chan struct{}, 1)
		q.wake[inbox] = c
	}
	return c
}

func (q *fakeQueue) signalLocked(inbox string) {
	select {
	case q.wakeLocked(inbox) <- struct{}{}:
	default:
	}
}

func (q *fakeQueue) Wake(inbox string) <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.wakeLocked(inbox)
}

func (q *fakeQueue) Lease(inbox string, now time.Time, ordered bool) (string, time.Time, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.claims++
	var next time.Time
	// Skip what is finished for good, so a long benchmark stays linear.
	h := q.head[inbox]
	for h < len(q.order[inbox]) && q.events[q.order[inbox][h]].State != store.Pending {
		h++
	}
	q.head[inbox] = h
	pending := q.order[inbox][h:]
	if ordered {
		for _, id := range pending {
			if q.events[id].leased {
				return "", time.Time{}, nil
			}
		}
		for _, id := range pending {
			fe := q.events[id]
			if fe.State != store.Pending {
				continue
			}
			if fe.NextAttemptAt.After(now) {
				return "", fe.NextAttemptAt, nil
			}
			fe.leased = true
			return id, time.Time{}, nil
		}
		return "", time.Time{}, nil
	}
	for _, id := range pending {
		fe := q.events[id]
		if fe.State != store.Pending || fe.leased {
			continue
		}
		if fe.NextAttemptAt.After(now) {
			if next.IsZero() || fe.NextAttemptAt.Before(next) {
				next = fe.NextAttemptAt
			}
			continue
		}
		fe.leased = true
		return id, time.Time{}, nil
	}
	return "", next, nil
}

func (q *fakeQueue) Load(id string, now time.Time) (*store.Event, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	fe, ok := q.events[id]
	if !ok || !fe.leased {
		q.t.Errorf("Load(%s) on an event not leased", id)
		return nil, store.ErrNotFound
	}
	e := fe.Event
	return &e, nil
}

func (q *fakeQueue) Record(id string, a store.Attempt, next store.Next) (*store.Event, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	fe, ok := q.events[id]
	if !ok || !fe.leased {
		q.t.Errorf("Record(%s) on an event not leased", id)
		return nil, store.ErrNotFound
	}
	if a.N != fe.Attempts+1 {
		q.t.Errorf("Record(%s): attempt N = %d, want %d", id, a.N, fe.Attempts+1)
	}
	fe.leased = false
	fe.Attempts = a.N
	fe.attempts = append(fe.attempts, a)
	fe.nexts = append(fe.nexts, next)
	switch {
	case next.Delivered:
		fe.State, fe.FinishedAt = store.Delivered, time.Now()
	case next.Dead:
		fe.State, fe.FinishedAt = store.Dead, time.Now()
	default:
		fe.NextAttemptAt = next.RetryAt
	}
	// Ending the lease wakes the inbox, as the store does: the dispatcher
	// may have looked for due events while this one was still leased.
	q.signalLocked(fe.Inbox)
	e := fe.Event
	return &e, nil
}

func (q *fakeQueue) Release(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	fe, ok := q.events[id]
	if !ok || !fe.leased {
		q.t.Errorf("Release(%s) on an event not leased", id)
		return
	}
	q.release++
	fe.leased = false
	q.signalLocked(fe.Inbox)
}

// get returns a snapshot of one event.
func (q *fakeQueue) get(id string) fakeEvent {
	q.mu.Lock()
	defer q.mu.Unlock()
	fe := *q.events[id]
	fe.attempts = append([]store.Attempt(nil), fe.attempts...)
	fe.nexts = append([]store.Next(nil), fe.nexts...)
	return fe
}

// finished counts the inbox's events delivered or dead.
func (q *fakeQueue) finished(inbox string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, id := range q.order[inbox] {
		if s := q.events[id].State; s == store.Delivered || s == store.Dead {
			n++
		}
	}
	return n
}

// ids returns the inbox's event ids in arrival order.
func (q *fakeQueue) ids(inbox string) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.order[inbox]...)
}

// leased counts the inbox's leased events.
func (q *fakeQueue) leased(inbox string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, id := range q.order[inbox] {
		if q.events[id].leased {
			n++
		}
	}
	return n
}

var _ Queue = (*fakeQueue)(nil)
