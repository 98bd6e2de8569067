package deliver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hookinbox/hookinbox/internal/store"
)

// These tests deliver from the real store with its fault seam: the store
// fails on demand while the application answers, and the test counts what
// the application receives.

// perEvent counts the requests an application got for each Hookinbox-Id.
type perEvent struct {
	mu sync.Mutex
	n  map[string]int
}

func (p *perEvent) add(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == nil {
		p.n = make(map[string]int)
	}
	p.n[id]++
}

func (p *perEvent) counts() (events, requests, most int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.n {
		requests += c
		most = max(most, c)
	}
	return len(p.n), requests, most
}

func openFaultyStore(t *testing.T, logger *zap.Logger) (*store.DB, *store.Faults) {
	t.Helper()
	f := new(store.Faults)
	db, err := store.Open(t.TempDir(), store.Options{Retention: time.Hour, Faults: f, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, f
}

func enqueueN(t *testing.T, db *store.DB, inbox string, n int) {
	t.Helper()
	for i := range n {
		e := &store.Event{Inbox: inbox, Method: http.MethodPost, Body: fmt.Appendf(nil, `{"n":%d}`, i)}
		if _, _, err := db.Enqueue(context.Background(), e, store.Limits{}); err != nil {
			t.Fatal(err)
		}
	}
}

// When the store cannot record attempts, the application gets each event
// in flight once, not again and again as fast as it answers; nothing new is
// attempted until the store records again, and then every event is
// delivered, none twice.
func TestFailingRecordsDoNotHammerTheApp(t *testing.T) {
	for _, tt := range []struct {
		step  store.Step
		heals bool
	}{
		{store.StepRecord, true},
		{store.StepJournalWrite, true},
		{store.StepSync, false}, // the store is failed until it is opened again
	} {
		t.Run(string(tt.step), func(t *testing.T) {
			db, faults := openFaultyStore(t, nil)
			const events, concurrency = 20, 4
			enqueueN(t, db, "in", events)
			var got perEvent
			app := newBackend(t, func(w http.ResponseWriter, r *http.Request, _ int) {
				got.add(r.Header.Get("Hookinbox-Id"))
			})
			faults.Fail(tt.step, errors.New("no space left on device"))
			s := newService(t, db, Hooks{})
			s.Configure([]Inbox{{Name: "in", Forward: app.URL, Concurrency: concurrency}})

			waitFor(t, 2*time.Second, "the first attempts", func() bool { _, n, _ := got.counts(); return n >= concurrency })
			time.Sleep(2500 * time.Millisecond) // two rounds of record retries
			// The attempts in flight when the store began to fail, and as
			// many more answered while their records were being written.
			if ev, n, most := got.counts(); n > 2*concurrency || most > 1 {
				t.Fatalf("while the store failed: %d requests for %d events (at most %d for one); want at most one each, %d in all",
					n, ev, most, 2*concurrency)
			}
			if !tt.heals {
				return
			}
			faults.Heal(tt.step)
			waitFor(t, 10*time.Second, "every event delivered", func() bool { return db.Pending("in") == 0 })
			if ev, n, most := got.counts(); ev != events || most > 1 {
				t.Errorf("after the store healed: %d events got %d requests (at most %d for one); want %d, once each", ev, n, most, events)
			}
		})
	}
}

// TestStoreFailingForAMinute: 100 events pending, the store failing for a
// whole minute while the application answers. The application gets at most
// one attempt per event per scheduled retry (here: none is due within the
// minute, so one each at most), and the log carries at most one error line
// per inbox, and one of the store's, per ten seconds.
func TestStoreFailingForAMinute(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for a minute")
	}
	t.Parallel()
	core, logs := observer.New(zap.ErrorLevel)
	logger := zap.New(core)
	db, faults := openFaultyStore(t, logger.Named("store"))
	const events = 100
	enqueueN(t, db, "a", events/2)
	enqueueN(t, db, "b", events/2)
	var got perEvent
	app := newBackend(t, func(w http.ResponseWriter, r *http.Request, n int) {
		got.add(r.Header.Get("Hookinbox-Id"))
		if n%2 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	faults.Fail(store.StepJournalWrite, errors.New("no space left on device"))
	s := New(db, logger.Named("deliver"), Hooks{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Stop(ctx)
	})
	retry := []time.Duration{2 * time.Minute}
	s.Configure([]Inbox{
		{Name: "a", Forward: app.URL, Concurrency: 4, Retry: retry},
		{Name: "b", Forward: app.URL, Concurrency: 4, Retry: retry},
	})

	start := time.Now()
	time.Sleep(time.Minute)
	// Per inbox: the attempts in flight when the store began to fail, and
	// as many more answered while their records were being written.
	if ev, n, most := got.counts(); most > 1 || n > 2*8 {
		t.Errorf("in a minute of a failing store: %d requests for %d events, at most %d for one; want at most one each, and at most twice the inboxes' concurrency in all",
			n, ev, most)
	}
	byWindow := make(map[string]int)
	for _, entry := range logs.All() {
		source := entry.LoggerName
		if in, ok := entry.ContextMap()["inbox"].(string); ok {
			source += "/" + in
		}
		window := int(entry.Time.Sub(start) / (10 * time.Second))
		if byWindow[fmt.Sprintf("%s@%d", source, window)]++; byWindow[fmt.Sprintf("%s@%d", source, window)] > 1 {
			t.Errorf("a second error line from %s in the same ten seconds: %s", source, entry.Message)
		}
	}
	t.Logf("%d error lines in a minute", logs.Len())

	faults.Heal(store.StepJournalWrite)
	waitFor(t, 10*time.Second, "the held records written and the rest attempted", func() bool {
		_, n, _ := got.counts()
		return n >= events
	})
	if ev, _, most := got.counts(); ev != events || most > 1 {
		t.Errorf("after the store healed: %d events attempted, at most %d times; want %d, once each (no retry is due yet)", ev, most, events)
	}
}
