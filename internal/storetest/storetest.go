// Package storetest is the conformance suite of hookinbox's stores: the
// promises of SPEC.md's "Stores" section, written once as a table of cases
// that every store runs (each store's tests call Run). A promise is tested
// here once and holds for every store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hookinbox/hookinbox/internal/store"
)

// Opener opens a fresh, empty store for one case, closed when the test
// ends, with the fault seam that makes its writes fail on demand.
type Opener func(t *testing.T) (store.Store, *store.Faults)

// Case is one promise.
type Case struct {
	Name string
	Run  func(t *testing.T, s store.Store, f *store.Faults)
}

// Cases are the promises every store keeps.
var Cases = []Case{
	{"an acknowledged event is leased, loaded and recorded", roundTrip},
	{"a lease is exclusive", leaseIsExclusive},
	{"an ordered inbox hands out its head only, one at a time", orderedHead},
	{"a retry is not due before its time", retryWaits},
	{"a duplicate within the window is not stored", dedupe},
	{"max_pending holds under concurrency", maxPending},
	{"a replay during an attempt delivers again", replayDuringAttempt},
	{"a failed enqueue stores nothing", failedEnqueue},
	{"a failed record keeps the lease", failedRecord},
	{"a deleted event in flight ends its lease", deleteInFlight},
	{"a bulk replay moves every dead event", replayInbox},
	{"a listing is newest first and pages", listPages},
	{"inbox counts follow every move", inboxCounts},
}

// Run runs every case against the stores open makes.
func Run(t *testing.T, open Opener) {
	for _, c := range Cases {
		t.Run(c.Name, func(t *testing.T) {
			s, f := open(t)
			c.Run(t, s, f)
		})
	}
}

func enqueue(t *testing.T, s store.Store, inbox, body string) string {
	t.Helper()
	id, dup, err := s.Enqueue(context.Background(), &store.Event{
		Inbox: inbox, Method: http.MethodPost, Path: "/" + inbox,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body),
	}, store.Limits{})
	if err != nil || dup {
		t.Fatalf("enqueue: %v (duplicate %v)", err, dup)
	}
	return id
}

// lease leases and loads the next due event of inbox, or returns nil.
func lease(t *testing.T, s store.Store, inbox string, now time.Time, ordered bool) *store.Event {
	t.Helper()
	id, _, err := s.Lease(inbox, now, ordered)
	if err != nil {
		t.Fatal(err)
	}
	if id == "" {
		return nil
	}
	e, err := s.Load(id, now)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func record(t *testing.T, s store.Store, id string, outcome string, next store.Next) *store.Event {
	t.Helper()
	e, err := s.Record(id, store.Attempt{At: time.Now(), Outcome: outcome, Status: 200}, next)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func roundTrip(t *testing.T, s store.Store, _ *store.Faults) {
	id := enqueue(t, s, "in", `{"a":1}`)
	e := lease(t, s, "in", time.Now(), false)
	if e == nil || e.ID != id || string(e.Body) != `{"a":1}` || e.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("leased %+v, want event %s with its request", e, id)
	}
	got := record(t, s, id, store.OutcomeOK, store.Next{Delivered: true})
	if got.State != store.Delivered || got.Attempts != 1 || got.FinishedAt.IsZero() {
		t.Errorf("record returned %s after %d attempts, finished %s", got.State, got.Attempts, got.FinishedAt)
	}
	stored, attempts, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if stored.State != got.State || stored.Attempts != got.Attempts || len(attempts) != 1 || attempts[0].N != 1 {
		t.Errorf("stored %s, %d attempts (%d records); the record returned %s, %d", stored.State, stored.Attempts, len(attempts), got.State, got.Attempts)
	}
	if e := lease(t, s, "in", time.Now().Add(time.Hour), false); e != nil {
		t.Error("a delivered event was leased again")
	}
}

func leaseIsExclusive(t *testing.T, s store.Store, _ *store.Faults) {
	const n = 20
	for i := range n {
		enqueue(t, s, "in", fmt.Sprint(i))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				id, _, err := s.Lease("in", time.Now(), false)
				if err != nil {
					t.Error(err)
					return
				}
				if id == "" {
					return
				}
				mu.Lock()
				seen[id]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("%d events leased, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c > 1 {
			t.Errorf("event %s leased %d times at once", id, c)
		}
	}
}

func orderedHead(t *testing.T, s store.Store, _ *store.Faults) {
	ids := []string{enqueue(t, s, "in", "1"), enqueue(t, s, "in", "2"), enqueue(t, s, "in", "3")}
	head := lease(t, s, "in", time.Now(), true)
	if head == nil || head.ID != ids[0] {
		t.Fatalf("ordered lease = %v, want the oldest %s", head, ids[0])
	}
	if e := lease(t, s, "in", time.Now(), true); e != nil {
		t.Fatalf("a second event %s leased while the head is in flight", e.ID)
	}
	// A failing head holds the line, even once the others are due.
	record(t, s, ids[0], store.OutcomeServerError, store.Next{RetryAt: time.Now().Add(time.Hour)})
	if e := lease(t, s, "in", time.Now(), true); e != nil {
		t.Fatalf("%s leased while the head waits for its retry", e.ID)
	}
	if e := lease(t, s, "in", time.Now().Add(2*time.Hour), true); e == nil || e.ID != ids[0] {
		t.Fatalf("after the head's retry is due: %v, want the head again", e)
	}
	record(t, s, ids[0], store.OutcomeOK, store.Next{Delivered: true})
	if e := lease(t, s, "in", time.Now(), true); e == nil || e.ID != ids[1] {
		t.Errorf("after the head is delivered: %v, want %s", e, ids[1])
	}
}

func retryWaits(t *testing.T, s store.Store, _ *store.Faults) {
	id := enqueue(t, s, "in", "x")
	lease(t, s, "in", time.Now(), false)
	retryAt := time.Now().Add(24 * time.Hour)
	got := record(t, s, id, store.OutcomeServerError, store.Next{RetryAt: retryAt})
	if got.State != store.Pending || !got.NextAttemptAt.Equal(retryAt) {
		t.Errorf("after a failed attempt: %s due %s, want pending due %s", got.State, got.NextAttemptAt, retryAt)
	}
	leased, next, err := s.Lease("in", time.Now(), false)
	if err != nil || leased != "" || !next.Equal(retryAt) {
		t.Errorf("Lease before the retry = %q, next %s, %v; want nothing, next %s", leased, next, err, retryAt)
	}
	if e := lease(t, s, "in", retryAt, false); e == nil || e.ID != id || e.Attempts != 1 {
		t.Errorf("at the retry's time: %v, want %s after 1 attempt", e, id)
	}
}

func dedupe(t *testing.T, s store.Store, _ *store.Faults) {
	limits := store.Limits{Dedupe: time.Hour}
	first, dup, err := s.Enqueue(context.Background(), &store.Event{Inbox: "in", DedupeKey: "evt_1"}, limits)
	if err != nil || dup {
		t.Fatal(err, dup)
	}
	again, dup, err := s.Enqueue(context.Background(), &store.Event{Inbox: "in", DedupeKey: "evt_1"}, limits)
	if err != nil || !dup || again != first {
		t.Errorf("the same key again: %s duplicate %v %v; want %s as a duplicate", again, dup, err, first)
	}
	other, dup, err := s.Enqueue(context.Background(), &store.Event{Inbox: "other", DedupeKey: "evt_1"}, limits)
	if err != nil || dup || other == first {
		t.Errorf("the same key in another inbox: duplicate %v %v; want a new event", dup, err)
	}
	if _, dup, _ := s.Enqueue(context.Background(), &store.Event{Inbox: "in", DedupeKey: "evt_1"}, store.Limits{}); dup {
		t.Error("without a window, a request was taken for a duplicate")
	}
}

func maxPending(t *testing.T, s store.Store, _ *store.Faults) {
	const limit, burst = 10, 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	stored, full := 0, 0
	for i := range burst {
		wg.Go(func() {
			_, _, err := s.Enqueue(context.Background(), &store.Event{Inbox: "in", Body: fmt.Append(nil, i)},
				store.Limits{MaxPending: limit})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				stored++
			case errors.Is(err, store.ErrInboxFull):
				full++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if stored != limit || full != burst-limit {
		t.Errorf("%d stored, %d refused as full; want %d and %d", stored, full, limit, burst-limit)
	}
}

func replayDuringAttempt(t *testing.T, s store.Store, _ *store.Faults) {
	id := enqueue(t, s, "in", "x")
	lease(t, s, "in", time.Now(), false)
	if err := s.Replay(id, time.Now()); err != nil {
		t.Fatal(err)
	}
	got := record(t, s, id, store.OutcomeOK, store.Next{Delivered: true})
	if got.State != store.Pending {
		t.Fatalf("after the attempt in flight: %s, want pending (the replay)", got.State)
	}
	if e := lease(t, s, "in", time.Now(), false); e == nil || e.ID != id {
		t.Fatalf("the replay is not due: %v", e)
	}
	if got := record(t, s, id, store.OutcomeOK, store.Next{Delivered: true}); got.State != store.Delivered || got.Attempts != 2 {
		t.Errorf("the replay's attempt: %s after %d attempts, want delivered after 2", got.State, got.Attempts)
	}
}

func failedEnqueue(t *testing.T, s store.Store, f *store.Faults) {
	f.Fail(store.StepJournalWrite, errors.New("no space left on device"))
	if _, _, err := s.Enqueue(context.Background(), &store.Event{Inbox: "in", Body: []byte("lost")}, store.Limits{}); err == nil {
		t.Fatal("Enqueue succeeded while the store could not write")
	}
	f.Heal(store.StepJournalWrite)
	events, _, err := s.List(store.Query{Inbox: "in"})
	if err != nil || len(events) != 0 {
		t.Errorf("after a failed enqueue: %d events listed, %v; want none", len(events), err)
	}
	enqueue(t, s, "in", "after")
}

func failedRecord(t *testing.T, s store.Store, f *store.Faults) {
	id := enqueue(t, s, "in", "x")
	lease(t, s, "in", time.Now(), false)
	f.Fail(store.StepRecord, errors.New("input/output error"))
	if _, err := s.Record(id, store.Attempt{At: time.Now(), Outcome: store.OutcomeOK}, store.Next{Delivered: true}); err == nil {
		t.Fatal("Record succeeded through a failing step")
	}
	if e := lease(t, s, "in", time.Now().Add(time.Hour), false); e != nil {
		t.Fatal("an event whose record failed was leased again")
	}
	f.Heal(store.StepRecord)
	if got := record(t, s, id, store.OutcomeOK, store.Next{Delivered: true}); got.State != store.Delivered {
		t.Errorf("the record tried again: %s", got.State)
	}
}

func deleteInFlight(t *testing.T, s store.Store, _ *store.Faults) {
	id := enqueue(t, s, "in", "x")
	lease(t, s, "in", time.Now(), false)
	if err := s.Delete(id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(id, store.Attempt{At: time.Now(), Outcome: store.OutcomeOK}, store.Next{Delivered: true}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Record of a deleted event = %v, want ErrNotFound", err)
	}
	if _, _, err := s.Get(id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of a deleted event = %v, want ErrNotFound", err)
	}
}

func replayInbox(t *testing.T, s store.Store, _ *store.Faults) {
	var dead []string
	for i := range 3 {
		id := enqueue(t, s, "in", fmt.Sprint(i))
		lease(t, s, "in", time.Now(), false)
		record(t, s, id, store.OutcomeServerError, store.Next{Dead: true})
		dead = append(dead, id)
	}
	kept := enqueue(t, s, "in", "pending")
	n, err := s.ReplayInbox("in", store.Dead, time.Now())
	if err != nil || n != len(dead) {
		t.Fatalf("ReplayInbox = %d, %v; want %d", n, err, len(dead))
	}
	var leased []string
	for e := lease(t, s, "in", time.Now(), false); e != nil; e = lease(t, s, "in", time.Now(), false) {
		leased = append(leased, e.ID)
	}
	want := append(slices.Clone(dead), kept)
	slices.Sort(want)
	slices.Sort(leased)
	if !slices.Equal(leased, want) {
		t.Errorf("due after the bulk replay: %v, want %v", leased, want)
	}
}

func listPages(t *testing.T, s store.Store, _ *store.Faults) {
	var ids []string
	for i := range 7 {
		ids = append(ids, enqueue(t, s, "in", fmt.Sprint(i)))
	}
	enqueue(t, s, "other", "x")
	var listed []string
	cursor := ""
	for range 10 {
		page, next, err := s.List(store.Query{Inbox: "in", Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			listed = append(listed, e.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	slices.Reverse(ids)
	if !slices.Equal(listed, ids) {
		t.Errorf("listed %v, want newest first %v", listed, ids)
	}
	if _, _, err := s.List(store.Query{Cursor: "not-a-cursor"}); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("List with a bad cursor = %v, want ErrBadCursor", err)
	}
}

func inboxCounts(t *testing.T, s store.Store, _ *store.Faults) {
	a := enqueue(t, s, "in", "a")
	enqueue(t, s, "in", "b")
	lease(t, s, "in", time.Now(), false)
	record(t, s, a, store.OutcomeOK, store.Next{Delivered: true})
	stats, err := s.Inboxes()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(stats, func(st store.InboxStats) bool { return st.Inbox == "in" })
	if i < 0 {
		t.Fatalf("inbox not listed: %+v", stats)
	}
	c := stats[i].Counts
	if c[store.Pending] != 1 || c[store.Delivered] != 1 || c[store.Dead] != 0 || stats[i].OldestPending.IsZero() {
		t.Errorf("counts %v, oldest pending %s; want 1 pending, 1 delivered", c, stats[i].OldestPending)
	}
}
