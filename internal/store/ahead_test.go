package store

import (
	"fmt"
	"testing"
	"time"
)

// aheadOf returns how many due keys of inbox a scan has read ahead.
func aheadOf(db *DB, inbox string) int {
	h := db.hintFor(db.dueHints, inbox)
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ahead)
}

// One scan reads the next due keys ahead; the next claims take them, in
// arrival order, each once.
func TestClaimsTakeTheKeysAScanReadAhead(t *testing.T) {
	db, _ := openTest(t)
	var ids []string
	for i := range 10 {
		ids = append(ids, enqueue(t, db, "in", fmt.Sprint(i)))
	}
	now := time.Now()
	for i, want := range ids {
		e := claim(t, db, "in", now, false)
		if e == nil || e.ID != want {
			t.Fatalf("claim %d = %v, want %s", i, e, want)
		}
		if n := aheadOf(db, "in"); n != len(ids)-1-i {
			t.Fatalf("after claim %d: %d keys read ahead, want %d", i, n, len(ids)-1-i)
		}
		if string(e.Body) != fmt.Sprint(i) {
			t.Errorf("claim %d read body %q", i, e.Body)
		}
	}
	if e := claim(t, db, "in", now, false); e != nil {
		t.Fatalf("an 11th claim got %s", e.ID)
	}
}

// An event that becomes due before the keys read ahead is claimed before
// them, not after the whole batch.
func TestAKeyInsertedBeforeTheKeysReadAheadIsClaimedFirst(t *testing.T) {
	db, _ := openTest(t)
	a := enqueue(t, db, "in", "a")
	b := enqueue(t, db, "in", "b")
	enqueue(t, db, "in", "c")
	if e := claim(t, db, "in", time.Now(), false); e == nil || e.ID != a {
		t.Fatalf("first claim = %v, want %s", e, a)
	}
	// a fails and is due again before b and c were even received.
	record(t, db, a, OutcomeServerError, Next{RetryAt: time.Now().Add(-time.Hour)})
	if e := claim(t, db, "in", time.Now(), false); e == nil || e.ID != a {
		t.Fatalf("second claim = %v, want %s again, before %s", e, a, b)
	}
}

// A key read ahead whose event was deleted or finished since is not handed
// out, and a replayed one is handed out with its new meta.
func TestKeysReadAheadAreCheckedAgainstLaterCommits(t *testing.T) {
	db, _ := openTest(t)
	enqueue(t, db, "in", "a")
	gone := enqueue(t, db, "in", "b")
	replayed := enqueue(t, db, "in", "c")
	claim(t, db, "in", time.Now(), false)
	if n := aheadOf(db, "in"); n != 2 {
		t.Fatalf("%d keys read ahead, want 2", n)
	}
	if err := db.Delete(gone); err != nil {
		t.Fatal(err)
	}
	if err := db.Replay(replayed, time.Now()); err != nil {
		t.Fatal(err)
	}
	e := claim(t, db, "in", time.Now(), false)
	if e == nil || e.ID != replayed {
		t.Fatalf("claim = %v, want %s (the deleted %s skipped)", e, replayed, gone)
	}
	stored, _, err := db.Get(replayed)
	if err != nil {
		t.Fatal(err)
	}
	if !e.NextAttemptAt.Equal(stored.NextAttemptAt) {
		t.Errorf("claimed with the meta read ahead (due %v), not the replay's (due %v)", e.NextAttemptAt, stored.NextAttemptAt)
	}
}

func TestRewriteLogForgetsOldestFirst(t *testing.T) {
	l := newRewriteLog()
	l.add(10, []string{"a"})
	if !l.since("a", 9) || l.since("a", 10) || l.since("b", 0) {
		t.Fatal("a rewritten at 10: since(a, 9) must be true, since(a, 10) and since(b, 0) false")
	}
	for v := range uint64(rewriteLogSize) {
		l.add(11+v, []string{fmt.Sprint("x", v)})
	}
	if !l.since("b", 9) {
		t.Error("a snapshot older than the forgotten rewrites must count as outdated")
	}
	if l.since("b", 10) || !l.since("x4000", 10) {
		t.Error("snapshots at or after the oldest forgotten rewrite are checked exactly")
	}
}
