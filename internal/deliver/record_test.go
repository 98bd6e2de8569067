package deliver

import (
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hookinbox/hookinbox/internal/store"
)

// batchQueue is a fakeQueue that records several attempts in one call, as
// the store's RecordAll commits them in one commit, and keeps the size of
// each call.
type batchQueue struct {
	*fakeQueue

	mu      sync.Mutex
	batches []int
}

func (q *batchQueue) RecordAll(rs []store.Recording) error {
	q.mu.Lock()
	q.batches = append(q.batches, len(rs))
	q.mu.Unlock()
	for i := range rs {
		rs[i].Stored, rs[i].Err = q.Record(rs[i].ID, rs[i].Attempt, rs[i].Next)
	}
	return nil
}

func (q *batchQueue) sizes() []int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.batches)
}

var _ batchRecorder = (*batchQueue)(nil)

// gate is an application that holds each request until release.
func gate(t *testing.T) (*backend, chan struct{}) {
	t.Helper()
	release := make(chan struct{})
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		<-release
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	return b, release
}

// The records of attempts in flight together are committed together: the
// application answers four attempts at once, and one call records them.
func TestRecordsOfAttemptsInFlightShareACommit(t *testing.T) {
	q := &batchQueue{fakeQueue: newFakeQueue(t)}
	for range 4 {
		q.add("in", store.Event{})
	}
	app, release := gate(t)
	s := newService(t, q, Hooks{})
	s.recordWait = time.Minute // only a whole batch, or the last attempt, flushes
	s.Configure([]Inbox{{Name: "in", Forward: app.URL, Concurrency: 4}})

	waitFor(t, 2*time.Second, "four attempts in flight", func() bool { return app.inFlight.Load() == 4 })
	close(release)
	waitFor(t, 2*time.Second, "four events delivered", func() bool { return q.finished("in") == 4 })
	if got := q.sizes(); !slices.Equal(got, []int{4}) {
		t.Errorf("records committed in batches of %v, want one of 4", got)
	}
}

// A record does not wait for long behind an attempt that takes long: the
// application answers three attempts and holds the fourth, and the three
// are recorded meanwhile.
func TestRecordsDoNotWaitForASlowAttempt(t *testing.T) {
	q := &batchQueue{fakeQueue: newFakeQueue(t)}
	slow := q.add("in", store.Event{})
	for range 3 {
		q.add("in", store.Event{})
	}
	release := make(chan struct{})
	defer close(release)
	app := newBackend(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		if r.Header.Get(headerID) == slow {
			<-release
		}
	})
	s := newService(t, q, Hooks{})
	s.recordWait = 50 * time.Millisecond
	s.Configure([]Inbox{{Name: "in", Forward: app.URL, Concurrency: 4}})

	waitFor(t, 2*time.Second, "the three quick events recorded while the slow one is in flight",
		func() bool { return q.finished("in") == 3 })
	if q.get(slow).State != store.Pending {
		t.Errorf("the slow event is %s, want still pending", q.get(slow).State)
	}
}

// A queue that cannot record several attempts at once gets each record
// alone, as soon as its attempt is over, even while others are in flight.
func TestRecordsOneByOneWithoutBatches(t *testing.T) {
	q := newFakeQueue(t)
	slow := q.add("in", store.Event{})
	quick := q.add("in", store.Event{})
	release := make(chan struct{})
	defer close(release)
	app := newBackend(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		if r.Header.Get(headerID) == slow {
			<-release
		}
	})
	s := newService(t, q, Hooks{})
	s.recordWait = time.Minute
	s.Configure([]Inbox{{Name: "in", Forward: app.URL, Concurrency: 4}})

	waitFor(t, 2*time.Second, "the quick event recorded", func() bool { return q.get(quick).State == store.Delivered })
}

// Records do not wait for a whole batch when nothing more is coming: two
// events at a concurrency of four are recorded together once both are
// answered.
func TestRecordsOfTheLastAttemptsInFlight(t *testing.T) {
	q := &batchQueue{fakeQueue: newFakeQueue(t)}
	for range 2 {
		q.add("in", store.Event{})
	}
	app, release := gate(t)
	s := newService(t, q, Hooks{})
	s.recordWait = time.Minute
	s.Configure([]Inbox{{Name: "in", Forward: app.URL, Concurrency: 4}})

	waitFor(t, 2*time.Second, "two attempts in flight", func() bool { return app.inFlight.Load() == 2 })
	close(release)
	waitFor(t, 2*time.Second, "both events delivered", func() bool { return q.finished("in") == 2 })
	if got := q.sizes(); !slices.Equal(got, []int{2}) {
		t.Errorf("records committed in batches of %v, want one of 2", got)
	}
}
