package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// openFaulty opens a store in a fresh directory with a fault seam.
func openFaulty(t *testing.T) (*DB, *Faults, string) {
	t.Helper()
	dir := t.TempDir()
	f := new(Faults)
	db, err := Open(dir, Options{Retention: time.Hour, Faults: f})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, f, dir
}

// Each step of a write, made to fail: the write fails, nothing is stored,
// and only a failed sync or apply fails the store for good.
func TestEachFailingStepFailsTheWrite(t *testing.T) {
	for _, tt := range []struct {
		step  Step
		final bool
	}{
		{StepJournalWrite, false},
		{StepSync, true},
		{StepApply, true},
	} {
		t.Run(string(tt.step), func(t *testing.T) {
			db, f, _ := openFaulty(t)
			kept := enqueue(t, db, "in", "kept")
			f.Fail(tt.step, errors.New("input/output error"))
			if _, _, err := db.Enqueue(context.Background(), &Event{Inbox: "in", Body: []byte("lost")}, Limits{}); err == nil {
				t.Fatal("Enqueue succeeded while the store failed")
			}
			f.Heal(tt.step)
			_, _, err := db.Enqueue(context.Background(), &Event{Inbox: "in", Body: []byte("after")}, Limits{})
			if tt.final && err == nil {
				t.Error("a store whose sync or apply failed took a write afterwards")
			}
			if !tt.final && err != nil {
				t.Errorf("after the fault healed: %v", err)
			}
			if _, _, err := db.Get(kept); err != nil {
				t.Errorf("an event stored before the fault: %v", err)
			}
		})
	}
}

// A checkpoint that cannot create its file (here: a directory stands where
// checkpoint.tmp goes, as real as a permission error and refused to root
// too) is tried again; the store keeps taking writes and, once the file
// can be created, checkpoints.
func TestCheckpointThatCannotCreateItsFileIsTriedAgain(t *testing.T) {
	db, dir := openTest(t)
	enqueue(t, db, "in", "a")
	blocker := filepath.Join(dir, journalDir, checkpointFile+".tmp")
	if err := os.Mkdir(blocker, 0o700); err != nil {
		t.Fatal(err)
	}
	err := db.checkpoint()
	if err == nil {
		t.Fatal("checkpoint succeeded with a directory in place of its file")
	}
	if errors.Is(err, errSyncFailed) || db.failed.Load() != nil {
		t.Fatalf("a file that cannot be created failed the store: %v", err)
	}
	id := enqueue(t, db, "in", "b")
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	if err := db.checkpoint(); err != nil {
		t.Fatalf("checkpoint once the file can be created: %v", err)
	}
	if got := db.journal.checkpointedVersion(); got != db.committed.Load() {
		t.Errorf("checkpointed version %d, want the last commit's %d", got, db.committed.Load())
	}
	if _, _, err := db.Get(id); err != nil {
		t.Error(err)
	}
}

// The same through the seam, with the checkpointer's own cadence: writes
// go on while checkpoints fail.
func TestFailingCheckpointsDoNotStopWrites(t *testing.T) {
	db, f, _ := openFaulty(t)
	f.Fail(StepCheckpoint, errors.New("permission denied"))
	enqueue(t, db, "in", "a")
	if err := db.checkpoint(); err == nil {
		t.Fatal("checkpoint succeeded through a failing step")
	}
	enqueue(t, db, "in", "b")
	f.Heal(StepCheckpoint)
	if err := db.checkpoint(); err != nil {
		t.Fatal(err)
	}
}

// A record that cannot be written keeps the lease: the event is not handed
// out again while its attempt is unrecorded, and the record goes through
// once the store works again.
func TestFailedRecordKeepsTheLease(t *testing.T) {
	db, f, _ := openFaulty(t)
	id := enqueue(t, db, "in", "x")
	if e := claim(t, db, "in", time.Now(), false); e == nil || e.ID != id {
		t.Fatalf("claim = %v", e)
	}
	for _, step := range []Step{StepRecord, StepJournalWrite} {
		f.Fail(step, errors.New("no space left on device"))
		if _, err := db.Record(id, Attempt{At: time.Now(), Outcome: OutcomeOK, Status: 200}, Next{Delivered: true}); err == nil {
			t.Fatalf("%s failing: Record succeeded", step)
		}
		f.Heal(step)
		if e := claim(t, db, "in", time.Now().Add(time.Hour), false); e != nil {
			t.Fatalf("after a failed record (%s), the event was claimed again", step)
		}
	}
	e, err := db.Record(id, Attempt{At: time.Now(), Outcome: OutcomeOK, Status: 200}, Next{Delivered: true})
	if err != nil {
		t.Fatal(err)
	}
	if e.State != Delivered || e.Attempts != 1 {
		t.Errorf("Record returned %s after %d attempts, want delivered after 1", e.State, e.Attempts)
	}
	stored, attempts, err := db.Get(id)
	if err != nil || stored.State != Delivered || len(attempts) != 1 {
		t.Errorf("stored: %+v, %d attempts, %v", stored, len(attempts), err)
	}
}

// A record of an event deleted while its attempt was in flight ends the
// lease and says so.
func TestRecordOfADeletedEvent(t *testing.T) {
	db, _ := openTest(t)
	id := enqueue(t, db, "in", "x")
	claim(t, db, "in", time.Now(), false)
	if err := db.Delete(id); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Record(id, Attempt{At: time.Now(), Outcome: OutcomeOK}, Next{Delivered: true}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Record = %v, want ErrNotFound", err)
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if n := len(db.leases); n != 0 {
		t.Errorf("%d leases left", n)
	}
}

// A replay of an event whose attempt is in flight is not lost when that
// attempt's record comes: the event is pending and due again, with a fresh
// schedule, whatever the attempt's outcome.
func TestReplayDuringAnAttemptDeliversAgain(t *testing.T) {
	for _, next := range []Next{{Delivered: true}, {Dead: true}, {RetryAt: time.Now().Add(time.Hour)}} {
		db, _ := openTest(t)
		id := enqueue(t, db, "in", "x")
		if e := claim(t, db, "in", time.Now(), false); e == nil {
			t.Fatal("nothing claimed")
		}
		if err := db.Replay(id, time.Now()); err != nil {
			t.Fatal(err)
		}
		if e := claim(t, db, "in", time.Now(), false); e != nil {
			t.Fatal("an event in flight was claimed a second time")
		}
		e, err := db.Record(id, Attempt{At: time.Now(), Outcome: OutcomeOK, Status: 200}, next)
		if err != nil {
			t.Fatal(err)
		}
		if e.State != Pending || e.NextAttemptAt.After(time.Now()) || e.ReplayedAfter != 1 {
			t.Errorf("next %+v: after the record, %s due %s, replayed after %d; want pending, due now, after 1",
				next, e.State, e.NextAttemptAt, e.ReplayedAfter)
		}
		again := claim(t, db, "in", time.Now(), false)
		if again == nil || again.ID != id {
			t.Fatalf("next %+v: the replayed event is not claimable after its attempt", next)
		}
		// The replay asked for one more delivery, not one more each time.
		e, err = db.Record(id, Attempt{At: time.Now(), Outcome: OutcomeOK, Status: 200}, Next{Delivered: true})
		if err != nil || e.State != Delivered || e.Attempts != 2 {
			t.Errorf("the second attempt: %+v, %v", e, err)
		}
	}
}

// max_pending is a cap, not a hint: a burst of concurrent enqueues stores
// exactly the cap's worth, and refuses the rest with ErrInboxFull. A
// duplicate of a stored event is answered even when the inbox is full.
func TestMaxPendingHoldsUnderConcurrency(t *testing.T) {
	db, _ := openTest(t)
	const maxPending, burst = 10, 200
	limits := Limits{Dedupe: time.Hour, MaxPending: maxPending}
	var wg sync.WaitGroup
	errs := make([]error, burst)
	start := make(chan struct{})
	for i := range burst {
		wg.Go(func() {
			<-start
			_, _, errs[i] = db.Enqueue(context.Background(), &Event{Inbox: "in", DedupeKey: strings.Repeat("k", i+1)}, limits)
		})
	}
	close(start)
	wg.Wait()
	stored, full := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			stored++
		case errors.Is(err, ErrInboxFull):
			full++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if stored != maxPending || full != burst-maxPending {
		t.Errorf("%d stored and %d refused as full; want %d and %d", stored, full, maxPending, burst-maxPending)
	}
	if p := db.Pending("in"); p != maxPending {
		t.Errorf("Pending = %d, want %d", p, maxPending)
	}
	var storedKey string
	for i, err := range errs {
		if err == nil {
			storedKey = strings.Repeat("k", i+1)
			break
		}
	}
	if _, dup, err := db.Enqueue(context.Background(), &Event{Inbox: "in", DedupeKey: storedKey}, limits); err != nil || !dup {
		t.Errorf("a duplicate while full: dup %v, %v; want answered as a duplicate", dup, err)
	}
}

// A sender's key of any length is kept bounded, and still dedupes.
func TestLongDedupeKeyIsHashed(t *testing.T) {
	db, _ := openTest(t)
	long := strings.Repeat("x", 900<<10)
	id, _, err := db.Enqueue(context.Background(), &Event{Inbox: "in", DedupeKey: long}, Limits{Dedupe: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e, _, err := db.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.DedupeKey) > maxDedupeKey || !strings.HasPrefix(e.DedupeKey, "sha256:") {
		t.Errorf("stored dedupe key of %d bytes: %.40q", len(e.DedupeKey), e.DedupeKey)
	}
	again, dup, err := db.Enqueue(context.Background(), &Event{Inbox: "in", DedupeKey: long}, Limits{Dedupe: time.Hour})
	if err != nil || !dup || again != id {
		t.Errorf("the same long key again: %s dup %v %v; want %s as a duplicate", again, dup, err, id)
	}
	short := strings.Repeat("y", maxDedupeKey)
	id, _, _ = db.Enqueue(context.Background(), &Event{Inbox: "in", DedupeKey: short}, Limits{Dedupe: time.Hour})
	if e, _, _ := db.Get(id); e == nil || e.DedupeKey != short {
		t.Error("a key of the longest kept length was changed")
	}
}
