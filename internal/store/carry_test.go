package store

import (
	"errors"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The due scan hands Load the meta it read with the due key; a lease won
// on a snapshot taken before a commit that changed the event must not
// deliver that older meta.
func TestLoadIgnoresMetaOfOutdatedScan(t *testing.T) {
	db, _ := openTest(t)
	id := enqueue(t, db, "in", "body")
	var before *Event
	var readTs uint64
	err := db.view(func(txn *badger.Txn) error {
		readTs = txn.ReadTs()
		var err error
		before, err = readMeta(txn, id)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	e, _, err := db.Claim("in", time.Now(), false)
	if err != nil || e == nil || e.ID != id {
		t.Fatalf("Claim = %v, %v", e, err)
	}
	if _, err := db.Record(id, Attempt{At: time.Now(), Outcome: OutcomeServerError}, Next{RetryAt: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	// The scan that read before now wins the lease.
	if !db.lease(id, "in", false) {
		t.Fatal("lease refused")
	}
	db.keepCarried(id, readTs, before)
	got, err := db.Load(id, time.Now())
	if err != nil || got == nil {
		t.Fatalf("Load = %v, %v", got, err)
	}
	if got.Attempts != 1 {
		t.Errorf("Load read %d attempts, want the 1 recorded after the scan's snapshot", got.Attempts)
	}
	if string(got.Body) != "body" {
		t.Errorf("body %q", got.Body)
	}
}

// A scan on a current snapshot hands its meta over: Load returns the same
// event as a fresh read would.
func TestLoadUsesCarriedMeta(t *testing.T) {
	db, _ := openTest(t)
	id := enqueue(t, db, "in", "body")
	lid, _, err := db.Lease("in", time.Now(), false)
	if err != nil || lid != id {
		t.Fatalf("Lease = %q, %v", lid, err)
	}
	db.mu.Lock()
	m := db.carried[id]
	db.mu.Unlock()
	if m == nil {
		t.Fatal("the scan carried no meta")
	}
	got, err := db.Load(id, time.Now())
	if err != nil || got == nil {
		t.Fatalf("Load = %v, %v", got, err)
	}
	if got.ID != id || got.Inbox != "in" || got.State != Delivering || string(got.Body) != "body" {
		t.Errorf("Load = %+v", got)
	}
	db.mu.Lock()
	left := len(db.carried)
	db.mu.Unlock()
	if left != 0 {
		t.Errorf("%d carried metas left after Load", left)
	}
}

// Record writes on the meta its Load returned unless a commit changed the
// event meanwhile: an event deleted during its attempt stays deleted.
func TestRecordAfterDeleteDuringAttempt(t *testing.T) {
	db, _ := openTest(t)
	id := enqueue(t, db, "in", "x")
	if e := claim(t, db, "in", time.Now(), false); e == nil {
		t.Fatal("nothing claimed")
	}
	if err := db.Delete(id); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Record(id, Attempt{At: time.Now(), Outcome: OutcomeOK, Status: 200}, Next{Delivered: true}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Record after Delete: %v, want ErrNotFound", err)
	}
	if _, _, err := db.Get(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete and Record: %v, want ErrNotFound", err)
	}
}

// An event replayed during its attempt has a new due key; the record must
// move it from there, leaving one due key.
func TestRecordAfterReplayDuringAttemptKeepsOneDueKey(t *testing.T) {
	db, _ := openTest(t)
	id := enqueue(t, db, "in", "x")
	if e := claim(t, db, "in", time.Now(), false); e == nil {
		t.Fatal("nothing claimed")
	}
	time.Sleep(2 * time.Millisecond) // the replay's due time differs from the enqueue's
	if err := db.Replay(id, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Record(id, Attempt{At: time.Now(), Outcome: OutcomeServerError}, Next{RetryAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := db.view(func(txn *badger.Txn) error {
		prefix := duePrefix("in")
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d due keys after the record, want 1", n)
	}
}
