package store

import (
	"errors"
	"testing"
	"time"
)

// RecordAll records each leased event as Record would, in one commit: an
// event deleted in flight says so and the others are recorded; every
// lease ends, and the inbox is due again for what was rescheduled.
func TestRecordAll(t *testing.T) {
	db, _ := openTest(t)
	delivered := enqueue(t, db, "in", "a")
	retried := enqueue(t, db, "in", "b")
	deleted := enqueue(t, db, "in", "c")
	for range 3 {
		if e := claim(t, db, "in", time.Now(), false); e == nil {
			t.Fatal("nothing to claim")
		}
	}
	if err := db.Delete(deleted); err != nil {
		t.Fatal(err)
	}
	retryAt := time.Now().Add(time.Hour)
	rs := []Recording{
		{ID: delivered, Attempt: Attempt{At: time.Now(), Outcome: OutcomeOK, Status: 200}, Next: Next{Delivered: true}},
		{ID: retried, Attempt: Attempt{At: time.Now(), Outcome: OutcomeServerError, Status: 500}, Next: Next{RetryAt: retryAt}},
		{ID: deleted, Attempt: Attempt{At: time.Now(), Outcome: OutcomeOK, Status: 200}, Next: Next{Delivered: true}},
	}
	if err := db.RecordAll(rs); err != nil {
		t.Fatal(err)
	}
	if e := rs[0].Stored; rs[0].Err != nil || e == nil || e.State != Delivered || e.Attempts != 1 {
		t.Errorf("delivered: %+v, %v", e, rs[0].Err)
	}
	if e := rs[1].Stored; rs[1].Err != nil || e == nil || e.State != Pending || !e.NextAttemptAt.Equal(retryAt) {
		t.Errorf("retried: %+v, %v", e, rs[1].Err)
	}
	if !errors.Is(rs[2].Err, ErrNotFound) || rs[2].Stored != nil {
		t.Errorf("deleted: %+v, %v; want ErrNotFound", rs[2].Stored, rs[2].Err)
	}
	for _, id := range []string{delivered, retried} {
		if _, attempts, err := db.Get(id); err != nil || len(attempts) != 1 {
			t.Errorf("%s: %d attempts stored, %v", id, len(attempts), err)
		}
	}
	db.mu.Lock()
	leases := len(db.leases)
	db.mu.Unlock()
	if leases != 0 {
		t.Errorf("%d leases left", leases)
	}
	if e := claim(t, db, "in", retryAt, false); e == nil || e.ID != retried {
		t.Errorf("claim when the retry is due = %v, want %s", e, retried)
	}
}

// A RecordAll that cannot be committed records none of its attempts and
// keeps every lease; the same call goes through once the store works.
func TestFailedRecordAllKeepsTheLeases(t *testing.T) {
	db, f, _ := openFaulty(t)
	a := enqueue(t, db, "in", "a")
	b := enqueue(t, db, "in", "b")
	claim(t, db, "in", time.Now(), false)
	claim(t, db, "in", time.Now(), false)
	rs := []Recording{
		{ID: a, Attempt: Attempt{At: time.Now(), Outcome: OutcomeOK, Status: 200}, Next: Next{Delivered: true}},
		{ID: b, Attempt: Attempt{At: time.Now(), Outcome: OutcomeOK, Status: 200}, Next: Next{Delivered: true}},
	}
	for _, step := range []Step{StepRecord, StepJournalWrite} {
		f.Fail(step, errors.New("no space left on device"))
		if err := db.RecordAll(rs); err == nil {
			t.Fatalf("%s failing: RecordAll succeeded", step)
		}
		f.Heal(step)
		if rs[0].Stored != nil || rs[1].Stored != nil {
			t.Errorf("%s failing: RecordAll returned stored events", step)
		}
		if e := claim(t, db, "in", time.Now().Add(time.Hour), false); e != nil {
			t.Fatalf("after a failed RecordAll (%s), %s was claimed again", step, e.ID)
		}
	}
	if err := db.RecordAll(rs); err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if r.Stored == nil || r.Stored.State != Delivered || r.Stored.Attempts != 1 {
			t.Errorf("record %d: %+v, %v", i, r.Stored, r.Err)
		}
	}
}
