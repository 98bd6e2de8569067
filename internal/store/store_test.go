package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// openTest opens a store in a fresh directory, closed at the end of the test.
func openTest(t testing.TB) (*DB, string) {
	t.Helper()
	dir := t.TempDir()
	return openAt(t, dir), dir
}

// openAt opens the store in dir, closed at the end of the test.
func openAt(t testing.TB, dir string) *DB {
	t.Helper()
	db, err := Open(dir, Options{Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func reopen(t *testing.T, db *DB, dir string) *DB {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return openAt(t, dir)
}

func enqueue(t testing.TB, db *DB, inbox, body string) string {
	t.Helper()
	id, dup, err := db.Enqueue(context.Background(), &Event{
		Inbox:  inbox,
		Method: http.MethodPost,
		Path:   "/hooks/" + inbox,
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   []byte(body),
	}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if dup {
		t.Fatalf("enqueue of %q reported a duplicate", body)
	}
	return id
}

func claim(t testing.TB, db *DB, inbox string, now time.Time, ordered bool) *Event {
	t.Helper()
	e, _, err := db.Claim(inbox, now, ordered)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func record(t testing.TB, db *DB, id string, outcome string, next Next) {
	t.Helper()
	if _, err := db.Record(id, Attempt{At: time.Now(), Outcome: outcome, Status: 500}, next); err != nil {
		t.Fatal(err)
	}
}

func TestEnqueueClaimRecordRoundTrip(t *testing.T) {
	db, _ := openTest(t)
	in := &Event{
		Inbox:     "stripe",
		Method:    http.MethodPost,
		Path:      "/hooks/stripe",
		RawQuery:  "a=1",
		Header:    http.Header{"Stripe-Signature": {"t=1,v1=abc"}},
		Body:      []byte(`{"id":"evt_1"}`),
		Verified:  "stripe",
		DedupeKey: "evt_1",
	}
	id, dup, err := db.Enqueue(context.Background(), in, Limits{Dedupe: time.Hour})
	if err != nil || dup || id == "" || in.ID != id || in.ReceivedAt.IsZero() {
		t.Fatalf("Enqueue = %q, %v, %v (event id %q, received %v)", id, dup, err, in.ID, in.ReceivedAt)
	}
	if n := db.Pending("stripe"); n != 1 {
		t.Errorf("Pending = %d, want 1", n)
	}
	select {
	case <-db.Wake("stripe"):
	default:
		t.Error("enqueue did not wake the inbox")
	}

	e := claim(t, db, "stripe", time.Now(), false)
	if e == nil {
		t.Fatal("Claim found nothing")
	}
	if e.ID != id || e.State != Delivering || !bytes.Equal(e.Body, in.Body) ||
		e.Header.Get("Stripe-Signature") != "t=1,v1=abc" || e.RawQuery != "a=1" || e.Verified != "stripe" {
		t.Errorf("claimed %+v", e)
	}
	if again := claim(t, db, "stripe", time.Now(), false); again != nil {
		t.Errorf("leased event claimed twice")
	}

	a := Attempt{N: 1, At: time.Now(), Duration: 12 * time.Millisecond, Outcome: OutcomeOK, Status: 200, Response: []byte("ok")}
	if _, err := db.Record(id, a, Next{Delivered: true}); err != nil {
		t.Fatal(err)
	}
	got, attempts, err := db.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != Delivered || got.Attempts != 1 || got.FinishedAt.IsZero() || !bytes.Equal(got.Body, in.Body) {
		t.Errorf("after delivery: %+v", got)
	}
	if len(attempts) != 1 || attempts[0].Status != 200 || attempts[0].Outcome != OutcomeOK || string(attempts[0].Response) != "ok" {
		t.Errorf("attempts = %+v", attempts)
	}
	if n := db.Pending("stripe"); n != 0 {
		t.Errorf("Pending after delivery = %d, want 0", n)
	}
	if e := claim(t, db, "stripe", time.Now().Add(time.Hour), false); e != nil {
		t.Errorf("delivered event claimed again")
	}
}

func TestClaimDueOrder(t *testing.T) {
	db, _ := openTest(t)
	now := time.Now()
	a := enqueue(t, db, "in", "a")
	b := enqueue(t, db, "in", "b")
	c := enqueue(t, db, "in", "c")
	// a retries in 1h, b in 10m, c is due now.
	for _, r := range []struct {
		id string
		at time.Duration
	}{{a, time.Hour}, {b, 10 * time.Minute}} {
		if claim(t, db, "in", time.Now(), false) == nil {
			t.Fatal("nothing to claim")
		}
		record(t, db, r.id, OutcomeServerError, Next{RetryAt: now.Add(r.at)})
	}

	e, next, err := db.Claim("in", time.Now(), false)
	if err != nil || e == nil || e.ID != c {
		t.Fatalf("Claim = %v, %v; want c", e, err)
	}
	e, next, err = db.Claim("in", time.Now(), false)
	if err != nil || e != nil {
		t.Fatalf("a future event was claimed: %v, %v", e, err)
	}
	if !next.Equal(now.Add(10 * time.Minute)) {
		t.Errorf("next due = %v, want %v", next, now.Add(10*time.Minute))
	}
	if e := claim(t, db, "in", now.Add(11*time.Minute), false); e == nil || e.ID != b {
		t.Errorf("at +11m claimed %v, want b", e)
	}
	if e := claim(t, db, "in", now.Add(11*time.Minute), false); e != nil {
		t.Errorf("at +11m also claimed %v", e.ID)
	}
	if e := claim(t, db, "in", now.Add(2*time.Hour), false); e == nil || e.ID != a {
		t.Errorf("at +2h claimed %v, want a", e)
	}
	if e := claim(t, db, "other", now.Add(2*time.Hour), false); e != nil {
		t.Errorf("another inbox's event was claimed")
	}
}

func TestOrderedHeadOfLine(t *testing.T) {
	db, _ := openTest(t)
	ids := []string{enqueue(t, db, "o", "1"), enqueue(t, db, "o", "2"), enqueue(t, db, "o", "3")}
	now := time.Now()

	head := claim(t, db, "o", now, true)
	if head == nil || head.ID != ids[0] {
		t.Fatalf("ordered claim = %v, want the first", head)
	}
	if e := claim(t, db, "o", now, true); e != nil {
		t.Fatalf("claimed %s while the head is leased", e.ID)
	}
	// The head fails: it holds the line until its retry.
	record(t, db, ids[0], OutcomeServerError, Next{RetryAt: now.Add(time.Minute)})
	e, next, err := db.Claim("o", now, true)
	if err != nil || e != nil {
		t.Fatalf("claimed %v behind a failing head (err %v)", e, err)
	}
	if !next.Equal(now.Add(time.Minute)) {
		t.Errorf("next = %v, want the head's retry", next)
	}
	// Unordered, the others would be due.
	if e := claim(t, db, "o", now, false); e == nil || e.ID != ids[1] {
		t.Fatalf("unordered claim = %v", e)
	} else {
		db.Release(e.ID)
	}
	later := now.Add(2 * time.Minute)
	for i, want := range ids {
		e := claim(t, db, "o", later, true)
		if e == nil || e.ID != want {
			t.Fatalf("claim %d = %v, want %s", i, e, want)
		}
		record(t, db, e.ID, OutcomeOK, Next{Delivered: true})
	}
	if e := claim(t, db, "o", later, true); e != nil {
		t.Errorf("claimed %s after all were delivered", e.ID)
	}
}

func TestDedupe(t *testing.T) {
	db, _ := openTest(t)
	ev := func(inbox string) *Event {
		return &Event{Inbox: inbox, DedupeKey: "evt_1", Body: []byte("x")}
	}
	first, dup, err := db.Enqueue(context.Background(), ev("a"), Limits{Dedupe: time.Hour})
	if err != nil || dup {
		t.Fatal(dup, err)
	}
	tests := []struct {
		name    string
		inbox   string
		window  time.Duration
		wantDup bool
	}{
		{"same key within the window", "a", time.Hour, true},
		{"same key in another inbox", "b", time.Hour, false},
		{"dedupe off", "a", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, dup, err := db.Enqueue(context.Background(), ev(tt.inbox), Limits{Dedupe: tt.window})
			if err != nil {
				t.Fatal(err)
			}
			if dup != tt.wantDup || (dup && id != first) || (!dup && id == first) {
				t.Errorf("Enqueue = %s, %v; first was %s", id, dup, first)
			}
		})
	}
	if n := db.Pending("a"); n != 2 {
		t.Errorf("Pending(a) = %d, want 2", n)
	}

	t.Run("after the window", func(t *testing.T) {
		window := 300 * time.Millisecond
		id1, _, err := db.Enqueue(context.Background(), &Event{Inbox: "c", DedupeKey: "k"}, Limits{Dedupe: window})
		if err != nil {
			t.Fatal(err)
		}
		id2, dup, err := db.Enqueue(context.Background(), &Event{Inbox: "c", DedupeKey: "k"}, Limits{Dedupe: window})
		if err != nil || !dup || id2 != id1 {
			t.Fatalf("within window: %s %v %v", id2, dup, err)
		}
		time.Sleep(window + 50*time.Millisecond)
		id3, dup, err := db.Enqueue(context.Background(), &Event{Inbox: "c", DedupeKey: "k"}, Limits{Dedupe: window})
		if err != nil || dup || id3 == id1 {
			t.Fatalf("after window: %s %v %v", id3, dup, err)
		}
		// The new copy starts a new window.
		id4, dup, err := db.Enqueue(context.Background(), &Event{Inbox: "c", DedupeKey: "k"}, Limits{Dedupe: window})
		if err != nil || !dup || id4 != id3 {
			t.Fatalf("new window: %s %v %v", id4, dup, err)
		}
	})
}

func TestDedupeConcurrent(t *testing.T) {
	db, _ := openTest(t)
	const n = 50
	ids := make([]string, n)
	dups := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			ids[i], dups[i], errs[i] = db.Enqueue(context.Background(),
				&Event{Inbox: "gh", DedupeKey: "delivery-1", Body: []byte("x")}, Limits{Dedupe: time.Hour})
		})
	}
	close(start)
	wg.Wait()
	stored := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !dups[i] {
			stored++
		}
		if ids[i] != ids[0] {
			t.Errorf("copy %d got id %s, copy 0 got %s", i, ids[i], ids[0])
		}
	}
	if stored != 1 {
		t.Errorf("%d copies stored, want 1", stored)
	}
	if p := db.Pending("gh"); p != 1 {
		t.Errorf("Pending = %d, want 1", p)
	}
	evs, _, err := db.List(Query{Inbox: "gh"})
	if err != nil || len(evs) != 1 {
		t.Errorf("List = %d events, %v; want 1", len(evs), err)
	}
}

func TestScheduleSurvivesReopen(t *testing.T) {
	db, dir := openTest(t)
	retried := enqueue(t, db, "in", "retried")
	leased := enqueue(t, db, "in", "leased")
	fresh := enqueue(t, db, "in", "fresh")
	now := time.Now()
	if e := claim(t, db, "in", now, false); e == nil || e.ID != retried {
		t.Fatalf("claim = %v", e)
	}
	record(t, db, retried, OutcomeTimeout, Next{RetryAt: now.Add(time.Hour)})
	if e := claim(t, db, "in", now, false); e == nil || e.ID != leased {
		t.Fatalf("claim = %v", e)
	}
	// leased is in flight when the process stops without releasing it.

	db = reopen(t, db, dir)
	if p := db.Pending("in"); p != 3 {
		t.Errorf("Pending after reopen = %d, want 3", p)
	}
	e, attempts, err := db.Get(retried)
	if err != nil {
		t.Fatal(err)
	}
	if e.State != Pending || e.Attempts != 1 || len(attempts) != 1 || !e.NextAttemptAt.Equal(now.Add(time.Hour)) {
		t.Errorf("retried event after reopen: %+v, %d attempts", e, len(attempts))
	}
	var got []string
	for {
		e := claim(t, db, "in", time.Now(), false)
		if e == nil {
			break
		}
		got = append(got, e.ID)
	}
	if !slices.Equal(got, []string{leased, fresh}) {
		t.Errorf("claimable after reopen: %v, want the leased one and the fresh one", got)
	}
	if e := claim(t, db, "in", now.Add(61*time.Minute), false); e == nil || e.ID != retried {
		t.Errorf("retry at its time after reopen: %v", e)
	}
}

func TestReplay(t *testing.T) {
	db, _ := openTest(t)
	id := enqueue(t, db, "in", "x")
	for n := 1; n <= 2; n++ {
		e := claim(t, db, "in", time.Now().Add(time.Duration(n)*time.Hour), false)
		if e == nil {
			t.Fatalf("attempt %d: nothing claimed", n)
		}
		next := Next{RetryAt: time.Now().Add(time.Hour)}
		if n == 2 {
			next = Next{Dead: true}
		}
		record(t, db, id, OutcomeServerError, next)
	}
	e, _, _ := db.Get(id)
	if e.State != Dead || e.Attempts != 2 {
		t.Fatalf("after the last attempt: %+v", e)
	}
	if e := claim(t, db, "in", time.Now().Add(time.Hour*24), false); e != nil {
		t.Fatal("a dead event was claimed")
	}

	now := time.Now()
	if err := db.Replay(id, now); err != nil {
		t.Fatal(err)
	}
	e, attempts, err := db.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if e.State != Pending || !e.NextAttemptAt.Equal(now) || e.Attempts != 2 || len(attempts) != 2 || !e.FinishedAt.IsZero() {
		t.Errorf("after replay: %+v, %d attempts", e, len(attempts))
	}
	if e.ReplayedAfter != 2 {
		t.Errorf("ReplayedAfter = %d, want 2: the retry schedule starts over after the replay", e.ReplayedAfter)
	}
	c := claim(t, db, "in", now, false)
	if c == nil || c.ID != id {
		t.Fatalf("replayed event not claimable: %v", c)
	}
	record(t, db, id, OutcomeOK, Next{Delivered: true})
	_, attempts, _ = db.Get(id)
	if len(attempts) != 3 || attempts[2].N != 3 {
		t.Errorf("attempts after replay = %+v, want the third numbered 3", attempts)
	}
	if err := db.Replay("01ARZ3NDEKTSV4RRFFQ69G5FAV", now); !errors.Is(err, ErrNotFound) {
		t.Errorf("Replay(unknown) = %v, want ErrNotFound", err)
	}
}

// kill makes events of inbox dead through the normal path.
func kill(t *testing.T, db *DB, inbox string, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		ids = append(ids, enqueue(t, db, inbox, fmt.Sprint(i)))
	}
	for range n {
		e := claim(t, db, inbox, time.Now(), false)
		if e == nil {
			t.Fatal("nothing to claim")
		}
		record(t, db, e.ID, OutcomeClientError, Next{Dead: true})
	}
	return ids
}

func TestReplayInbox(t *testing.T) {
	db, _ := openTest(t)
	const n = 600 // more than a page
	kill(t, db, "in", n)
	kill(t, db, "other", 3)
	enqueue(t, db, "in", "pending")
	got, err := db.ReplayInbox("in", Dead, time.Now())
	if err != nil || got != n {
		t.Fatalf("ReplayInbox = %d, %v; want %d", got, err, n)
	}
	stats := statsByInbox(t, db)
	if c := stats["in"].Counts; c[Pending] != n+1 || c[Dead] != 0 {
		t.Errorf("counts after replay: %v", c)
	}
	if c := stats["other"].Counts; c[Dead] != 3 {
		t.Errorf("another inbox was replayed: %v", c)
	}
	claimed := 0
	for claim(t, db, "in", time.Now(), false) != nil {
		claimed++
	}
	if claimed != n+1 {
		t.Errorf("claimable after bulk replay: %d, want %d", claimed, n+1)
	}
	if _, err := db.ReplayInbox("in", Delivering, time.Now()); err == nil {
		t.Error("ReplayInbox(delivering) did not fail")
	}
}

func TestDelete(t *testing.T) {
	db, _ := openTest(t)
	id, _, err := db.Enqueue(context.Background(), &Event{Inbox: "in", DedupeKey: "k", Body: []byte("x")}, Limits{Dedupe: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Delete(id); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Get(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete = %v", err)
	}
	if err := db.Delete(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	if e := claim(t, db, "in", time.Now(), false); e != nil {
		t.Errorf("deleted event claimed")
	}
	if p := db.Pending("in"); p != 0 {
		t.Errorf("Pending = %d", p)
	}
	// Forgotten: the sender's copy is stored anew.
	if _, dup, _ := db.Enqueue(context.Background(), &Event{Inbox: "in", DedupeKey: "k"}, Limits{Dedupe: time.Hour}); dup {
		t.Error("a deleted event still deduplicates")
	}
	if n := countKeys(t, db, id); n != 0 {
		t.Errorf("%d keys of the deleted event remain", n)
	}
}

// countKeys counts the keys (in any table) that mention id.
func countKeys(t *testing.T, db *DB, id string) int {
	t.Helper()
	n := 0
	err := db.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if bytes.Contains(k, []byte(id)) {
				n++
				continue
			}
			if k[0] == tableDedupe {
				if err := it.Item().Value(func(v []byte) error {
					if bytes.Contains(v, []byte(id)) {
						n++
					}
					return nil
				}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestList(t *testing.T) {
	db, _ := openTest(t)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var all []string // oldest first
	for i := range 7 {
		inbox := "a"
		if i%2 == 1 {
			inbox = "b"
		}
		e := &Event{Inbox: inbox, ReceivedAt: t0.Add(time.Duration(i) * time.Minute), Body: []byte("secret body")}
		if _, _, err := db.Enqueue(context.Background(), e, Limits{}); err != nil {
			t.Fatal(err)
		}
		all = append(all, e.ID)
	}
	// all[0] (a) delivered, all[1] (b) dead, all[2] (a) leased.
	for _, r := range []Next{{Delivered: true}, {Dead: true}} {
		e := claim(t, db, "a", time.Now(), false)
		if e.ID != all[0] {
			db.Release(e.ID)
			e = claim(t, db, "b", time.Now(), false)
		}
		record(t, db, e.ID, OutcomeOK, r)
	}
	if e := claim(t, db, "a", time.Now(), false); e == nil || e.ID != all[2] {
		t.Fatalf("claim = %v", e)
	}
	rev := func(ids ...string) []string { s := slices.Clone(ids); slices.Reverse(s); return s }

	tests := []struct {
		name string
		q    Query
		want []string
	}{
		{"all newest first", Query{}, rev(all...)},
		{"inbox", Query{Inbox: "a"}, rev(all[0], all[2], all[4], all[6])},
		{"state", Query{State: Dead}, []string{all[1]}},
		{"inbox and state", Query{Inbox: "a", State: Pending}, rev(all[4], all[6])},
		{"delivering", Query{State: Delivering}, []string{all[2]}},
		{"delivered in inbox", Query{Inbox: "a", State: Delivered}, []string{all[0]}},
		{"since", Query{Since: t0.Add(5 * time.Minute)}, rev(all[5], all[6])},
		{"until", Query{Until: t0.Add(2 * time.Minute)}, rev(all[0], all[1])},
		{"since and until in inbox", Query{Inbox: "b", Since: t0.Add(time.Minute), Until: t0.Add(5 * time.Minute)}, rev(all[1], all[3])},
		{"unknown inbox", Query{Inbox: "zzz"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, cursor, err := db.List(tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if cursor != "" {
				t.Errorf("cursor %q on a single page", cursor)
			}
			var got []string
			for _, e := range evs {
				got = append(got, e.ID)
				if e.Body != nil {
					t.Errorf("List loaded the body of %s", e.ID)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v\nwant %v", got, tt.want)
			}
		})
	}

	// pageAll lists q page by page and returns every id and the page count.
	pageAll := func(t *testing.T, q Query) (ids []string, pages int) {
		t.Helper()
		for {
			evs, cursor, err := db.List(q)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, e := range evs {
				ids = append(ids, e.ID)
			}
			if cursor == "" {
				return ids, pages
			}
			q.Cursor = cursor
		}
	}
	t.Run("paging", func(t *testing.T) {
		if got, pages := pageAll(t, Query{Limit: 3}); !slices.Equal(got, rev(all...)) || pages != 3 {
			t.Errorf("paged %d pages: %v", pages, got)
		}
	})
	t.Run("paging across inboxes", func(t *testing.T) {
		// A state across inboxes walks one index per inbox at once.
		want := rev(all[3], all[4], all[5], all[6])
		if got, pages := pageAll(t, Query{State: Pending, Limit: 2}); !slices.Equal(got, want) || pages != 2 {
			t.Errorf("paged %d pages: %v\nwant %v", pages, got, want)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		if _, _, err := db.List(Query{Cursor: "not-a-cursor"}); err == nil {
			t.Error("a bad cursor was accepted")
		}
		if _, _, err := db.List(Query{State: "lost"}); err == nil {
			t.Error("an unknown state was accepted")
		}
	})
}

func statsByInbox(t *testing.T, db *DB) map[string]InboxStats {
	t.Helper()
	stats, err := db.Inboxes()
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]InboxStats)
	for _, s := range stats {
		m[s.Inbox] = s
	}
	return m
}

func TestInboxesCounts(t *testing.T) {
	db, dir := openTest(t)
	for range 9 {
		enqueue(t, db, "a", "x")
	}
	// Received first (a proxy held it), stored last: due last, but the oldest.
	first := time.Now().Add(-time.Minute)
	if _, _, err := db.Enqueue(context.Background(), &Event{Inbox: "a", ReceivedAt: first}, Limits{}); err != nil {
		t.Fatal(err)
	}
	enqueue(t, db, "b", "x")
	// a: 2 delivered, 2 dead (one then replayed), 1 deleted, 1 leased, 4 pending left.
	for i, next := range []Next{{Delivered: true}, {Delivered: true}, {Dead: true}, {Dead: true}, {RetryAt: time.Now().Add(time.Hour)}} {
		e := claim(t, db, "a", time.Now(), false)
		record(t, db, e.ID, fmt.Sprint(i), next)
		if i == 3 {
			if err := db.Replay(e.ID, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		if i == 4 {
			if err := db.Delete(e.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if claim(t, db, "a", time.Now(), false) == nil {
		t.Fatal("nothing to lease")
	}
	want := map[string]map[State]int{
		"a": {Pending: 5, Delivering: 1, Delivered: 2, Dead: 1},
		"b": {Pending: 1, Delivering: 0, Delivered: 0, Dead: 0},
	}
	check := func(when string, want map[string]map[State]int) {
		t.Helper()
		stats := statsByInbox(t, db)
		for inbox, counts := range want {
			if got := stats[inbox].Counts; !mapsEqual(got, counts) {
				t.Errorf("%s: counts of %s = %v, want %v", when, inbox, got, counts)
			}
		}
		if got := stats["a"].OldestPending; !got.Equal(first) {
			t.Errorf("%s: oldest pending = %v, want %v", when, got, first)
		}
		if len(stats) != len(want) {
			t.Errorf("%s: %d inboxes, want %d", when, len(stats), len(want))
		}
	}
	check("live", want)
	if p := db.Pending("a"); p != 6 {
		t.Errorf("Pending(a) = %d, want 6", p)
	}
	db = reopen(t, db, dir)
	want["a"][Pending], want["a"][Delivering] = 6, 0 // the lease is gone
	check("after reopen", want)
	// The counters agree with the indexes.
	for inbox, counts := range want {
		for _, s := range storedStates {
			evs, _, err := db.List(Query{Inbox: inbox, State: s, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != counts[s] {
				t.Errorf("%s %s: %d listed, counter says %d", inbox, s, len(evs), counts[s])
			}
		}
	}
}

func mapsEqual(a, b map[State]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestRetention(t *testing.T) {
	db, _ := openTest(t)
	db.SetRetention(time.Hour)
	old := kill(t, db, "in", 3)
	e := claim(t, db, "in", time.Now(), false)
	if e != nil {
		t.Fatal("unexpected pending event")
	}
	delivered := enqueue(t, db, "in", "delivered")
	claim(t, db, "in", time.Now(), false)
	record(t, db, delivered, OutcomeOK, Next{Delivered: true})
	pending := enqueue(t, db, "in", "pending")

	// Nothing is old enough yet.
	if n, err := db.expire(time.Now()); err != nil || n != 0 {
		t.Fatalf("expire(now) = %d, %v", n, err)
	}
	n, err := db.expire(time.Now().Add(2 * time.Hour))
	if err != nil || n != 4 {
		t.Fatalf("expire(+2h) = %d, %v; want 4", n, err)
	}
	for _, id := range append(old, delivered) {
		if _, _, err := db.Get(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%s) after expiry = %v", id, err)
		}
		if k := countKeys(t, db, id); k != 0 {
			t.Errorf("%d keys of expired %s remain", k, id)
		}
	}
	if _, _, err := db.Get(pending); err != nil {
		t.Errorf("the pending event was expired: %v", err)
	}
	c := statsByInbox(t, db)["in"].Counts
	if c[Pending] != 1 || c[Dead] != 0 || c[Delivered] != 0 {
		t.Errorf("counts after expiry: %v", c)
	}
	db.SetRetention(0)
	if n, _ := db.expire(time.Now().Add(1000 * time.Hour)); n != 0 {
		t.Errorf("retention 0 expired %d events", n)
	}
	db.collectGarbage()
}

func TestCommitFailure(t *testing.T) {
	db, _ := openTest(t)
	kept := enqueue(t, db, "in", "kept")
	injected := errors.New("disk full")
	db.beforeCommit = func() error { return injected }

	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, _, errs[i] = db.Enqueue(context.Background(), &Event{Inbox: "in", Body: []byte("lost")}, Limits{})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, injected) {
			t.Errorf("caller %d: err = %v, want the commit error", i, err)
		}
	}
	e := claim(t, db, "in", time.Now(), false)
	if e == nil || e.ID != kept {
		t.Fatalf("claim = %v", e)
	}
	if _, err := db.Record(e.ID, Attempt{Outcome: OutcomeOK}, Next{Delivered: true}); !errors.Is(err, injected) {
		t.Errorf("Record = %v, want the commit error", err)
	}
	if p := db.Pending("in"); p != 1 {
		t.Errorf("Pending after failed commits = %d, want 1", p)
	}

	// The disk recovers: the writer goes on.
	db.beforeCommit = nil
	id := enqueue(t, db, "in", "after")
	evs, _, err := db.List(Query{Inbox: "in"})
	if err != nil || len(evs) != 2 || evs[0].ID != id || evs[1].ID != kept {
		t.Errorf("stored after recovery: %d events, %v", len(evs), err)
	}
	// The failed Record kept the lease; released, the event is due again.
	db.Release(e.ID)
	if e := claim(t, db, "in", time.Now(), false); e == nil || e.ID != kept {
		t.Errorf("after a failed record, claim = %v, want the same event again", e)
	}
}

func TestClosed(t *testing.T) {
	db, _ := openTest(t)
	db.Close()
	if _, _, err := db.Enqueue(context.Background(), &Event{Inbox: "in"}, Limits{}); err == nil {
		t.Error("Enqueue after Close succeeded")
	}
}

func TestWakeOnRecordAndRelease(t *testing.T) {
	db, _ := openTest(t)
	w := db.Wake("in")
	enqueue(t, db, "in", "x")
	<-w
	e := claim(t, db, "in", time.Now(), true)
	db.Release(e.ID)
	select {
	case <-w:
	default:
		t.Fatal("Release did not wake the inbox")
	}
	e = claim(t, db, "in", time.Now(), true)
	if e == nil {
		t.Fatal("a released event is not due")
	}
	record(t, db, e.ID, OutcomeServerError, Next{RetryAt: time.Now().Add(time.Hour)})
	select {
	case <-w:
	default:
		t.Fatal("Record did not wake the inbox")
	}
}

func TestSplitOnTxnTooBig(t *testing.T) {
	// A 1 MiB memtable caps a Badger transaction at about 150 KB: several
	// hundred queued enqueues of events whose meta stays in the tree (a
	// long path keeps it just below the value-log threshold) cannot share
	// one. Bodies do not count: they stay in the journal.
	db, err := Open(t.TempDir(), Options{MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n = 600
	path := "/" + strings.Repeat("p", valueThreshold-150)
	var once sync.Once
	db.beforeCommit = func() error {
		// Hold the first commit until the other enqueues are queued, so
		// that the next batch is too big for one transaction. The first
		// batch may hold a few of them already: wait for most, not all.
		once.Do(func() {
			deadline := time.Now().Add(5 * time.Second)
			for len(db.ops) < n-20 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		})
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, _, errs[i] = db.Enqueue(context.Background(), &Event{Inbox: "in", Path: path, Body: []byte("{}")}, Limits{})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("enqueue %d: %v", i, err)
		}
	}
	if s := db.splits.Load(); s == 0 {
		t.Error("no batch was split: the test did not exercise ErrTxnTooBig")
	}
	if p := db.Pending("in"); p != n {
		t.Errorf("Pending = %d, want %d", p, n)
	}
	evs, _, err := db.List(Query{Inbox: "in", Limit: 1000})
	if err != nil || len(evs) != n {
		t.Errorf("List = %d events, %v", len(evs), err)
	}
}

// TestConcurrentEnqueueClaim runs producers and consumers together: every
// event must be delivered once, none left behind by the claim scan hints.
func TestConcurrentEnqueueClaim(t *testing.T) {
	db, _ := openTest(t)
	const producers, each, consumers = 8, 300, 4
	total := producers * each
	var mu sync.Mutex
	delivered := make(map[string]int)
	var wg sync.WaitGroup
	for range producers {
		wg.Go(func() {
			for range each {
				if _, _, err := db.Enqueue(context.Background(), &Event{Inbox: "in", Body: []byte("x")}, Limits{}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	var cwg sync.WaitGroup
	for c := range consumers {
		cwg.Go(func() {
			for {
				e, _, err := db.Claim("in", time.Now(), c == 0) // one ordered claimer too
				if err != nil {
					t.Error(err)
					return
				}
				if e == nil {
					select {
					case <-done:
						return
					case <-db.Wake("in"):
					case <-time.After(20 * time.Millisecond):
					}
					continue
				}
				// Every other first attempt fails and is retried at once.
				next := Next{Delivered: true}
				if e.Attempts == 0 && len(e.ID)%2 == 0 && e.ID[len(e.ID)-1]%2 == 0 {
					next = Next{RetryAt: time.Now()}
				}
				if _, err := db.Record(e.ID, Attempt{Outcome: OutcomeOK}, next); err != nil {
					t.Error(err)
					return
				}
				if next.Delivered {
					mu.Lock()
					delivered[e.ID]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(delivered)
		mu.Unlock()
		if n == total || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(done)
	cwg.Wait()
	if len(delivered) != total {
		t.Fatalf("delivered %d of %d; Pending = %d", len(delivered), total, db.Pending("in"))
	}
	for id, n := range delivered {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	if p := db.Pending("in"); p != 0 {
		t.Errorf("Pending = %d, want 0", p)
	}
}
