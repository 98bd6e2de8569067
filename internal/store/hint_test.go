package store

import (
	"errors"
	"testing"
	"time"
)

// Claims start after the events already leased (hint.claimed); whatever
// makes an event before that point claimable again must bring the scan
// back: a release, a record whose commit failed, a retry due earlier.
func TestClaimComesBackForWhatBecameClaimable(t *testing.T) {
	db, _ := openTest(t)
	var ids []string
	for _, body := range []string{"a", "b", "c", "d", "e", "f"} {
		ids = append(ids, enqueue(t, db, "in", body))
	}
	claim := func() string {
		t.Helper()
		e, _, err := db.Claim("in", time.Now(), false)
		if err != nil || e == nil {
			t.Fatalf("Claim = %v, %v", e, err)
		}
		return e.ID
	}
	for _, want := range ids[:3] {
		if got := claim(); got != want {
			t.Fatalf("Claim = %s, want %s (arrival order)", got, want)
		}
	}

	db.Release(ids[1])
	if got := claim(); got != ids[1] {
		t.Errorf("after releasing %s, Claim = %s", ids[1], got)
	}

	db.beforeCommit = func() error { return errors.New("injected") }
	if _, err := db.Record(ids[2], Attempt{At: time.Now(), Outcome: OutcomeOK}, Next{Delivered: true}); err == nil {
		t.Fatal("Record with a failing commit succeeded")
	}
	db.beforeCommit = nil
	db.Release(ids[2]) // a failed record keeps the lease
	if got := claim(); got != ids[2] {
		t.Errorf("after a failed record of %s, Claim = %s", ids[2], got)
	}

	// A retry due before the events not yet claimed goes first.
	if _, err := db.Record(ids[0], Attempt{At: time.Now(), Outcome: OutcomeServerError}, Next{RetryAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if got := claim(); got != ids[0] {
		t.Errorf("after a retry of %s due an hour ago, Claim = %s", ids[0], got)
	}
	if got := claim(); got != ids[3] {
		t.Errorf("next Claim = %s, want %s", got, ids[3])
	}
}
