package store

import (
	"context"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func TestMemoryIsReleasedAfterABurstOnly(t *testing.T) {
	start := time.Now()
	m := newMemoryRelease(start)
	at := func(d time.Duration) time.Time { return start.Add(d) }

	// Small writes, then a long idle stretch: no burst, no release.
	m.due(at(time.Second), 1<<20)
	if m.due(at(10*time.Minute), 1<<20) {
		t.Fatal("released after 1 MiB written")
	}

	// A burst ends at 20 min.
	m.due(at(19*time.Minute), 40<<20)
	m.due(at(20*time.Minute), 100<<20)
	var released []time.Duration
	for s := 20 * time.Minute; s <= 40*time.Minute; s += releaseTick {
		if m.due(at(s), 100<<20) {
			released = append(released, s-20*time.Minute)
		}
	}
	want := []time.Duration{20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second}
	if len(released) != len(want) {
		t.Fatalf("released after %v of idle, want after %v", released, want)
	}
	for i := range want {
		if released[i] < want[i] || released[i] >= want[i]+releaseTick {
			t.Errorf("release %d after %v of idle, want %v", i+1, released[i], want[i])
		}
	}

	// A write during the idle stretch starts it over; a second burst
	// releases again.
	m.due(at(41*time.Minute), 200<<20)
	if m.due(at(41*time.Minute+10*time.Second), 200<<20) {
		t.Error("released 10 s after a write")
	}
	if !m.due(at(41*time.Minute+20*time.Second), 200<<20) {
		t.Error("no release 20 s after the second burst")
	}
}

// TestIdleWorkIsBoundedWithABacklog checks that what the store does on its
// own while no request comes (the janitor's retention sweep, journal
// compaction and value-log GC, discarding old versions, a checkpoint)
// allocates about the same with a backlog of any size: none of it may walk
// the pending events, which on a million would take hundreds of MB. Badger's
// own goroutines allocate meanwhile too, so the bound is loose: a round
// allocates about 2 KiB, and a walk over the ids of the 20,000 pending
// events alone allocates twice the bound.
func TestIdleWorkIsBoundedWithABacklog(t *testing.T) {
	const pending = 20000
	db, _ := openTest(t)
	body := make([]byte, 1024)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for next.Add(1) <= pending {
				e := &Event{Inbox: "idle", Method: "POST", Path: "/hooks/idle", Body: body}
				if _, _, err := db.Enqueue(context.Background(), e, Limits{}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	idle := func() {
		now := time.Now()
		if _, err := db.expire(now); err != nil {
			t.Fatal(err)
		}
		db.discardOld()
		if _, err := db.compactRequests(); err != nil {
			t.Fatal(err)
		}
		db.collectGarbage()
		if err := db.checkpoint(); err != nil {
			t.Fatal(err)
		}
	}
	idle() // the first round checkpoints the backlog's writes
	// Badger may still be compacting the backlog's tables, which allocates
	// megabytes: the least of a few windows is the idle work's own, which
	// would show in every window.
	const rounds, windows = 5, 3
	perRound := uint64(math.MaxUint64)
	for range windows {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range rounds {
			idle()
		}
		runtime.ReadMemStats(&after)
		perRound = min(perRound, (after.TotalAlloc-before.TotalAlloc)/rounds)
	}
	t.Logf("idle work with %d events pending: %d KiB allocated per round", pending, perRound>>10)
	if limit := uint64(1 << 20); perRound > limit {
		t.Errorf("idle work with %d events pending allocated %d KiB per round, want at most %d KiB",
			pending, perRound>>10, limit>>10)
	}
}

// TestCompactedTablesAreSmall checks that compaction writes tables of
// tableSize at most: the heap that compaction takes (several builders in
// flight, and 8 kept in Badger's pool) grows with their size.
func TestCompactedTablesAreSmall(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{Retention: time.Hour, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// About 250 bytes of keys and values in Badger per event: 60,000
	// flush a dozen memtables, which compaction merges into level 1 and on.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for next.Add(1) <= 60000 {
				e := &Event{Inbox: "tables", Method: "POST", Path: "/hooks/tables", Body: []byte("{}")}
				if _, _, err := db.Enqueue(context.Background(), e, Limits{Dedupe: time.Hour}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// Wait until compaction has written more than a few tables' worth, so
	// that tables of the wrong size would be among them.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var compacted []badger.TableInfo
		var size int
		for _, ti := range db.bdb.Tables() {
			if ti.Level > 0 {
				compacted = append(compacted, ti)
				size += int(ti.OnDiskSize)
			}
		}
		if size >= 3*tableSize {
			for _, ti := range compacted {
				// A builder closes a table once it is past 95% of the size,
				// so the last block may take it a little over.
				if ti.OnDiskSize > tableSize+tableSize/8 {
					t.Errorf("table %d at level %d is %d KiB, want at most about %d KiB",
						ti.ID, ti.Level, ti.OnDiskSize>>10, tableSize>>10)
				}
			}
			t.Logf("%d tables below level 0, %d KiB", len(compacted), size>>10)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d KiB of tables below level 0 after 30 s, want %d KiB or more", size>>10, 3*tableSize>>10)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestOldVersionsAreHandedToCompactionSoon checks that the janitor hands
// old versions to compaction every discardEvery, whatever the retention:
// until then compaction keeps every version of every rewritten key, which
// costs it CPU and the server mapped table pages.
func TestOldVersionsAreHandedToCompactionSoon(t *testing.T) {
	t.Parallel()
	db, err := Open(t.TempDir(), Options{Retention: 720 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, _, err := db.Enqueue(context.Background(), &Event{Inbox: "in", Method: "POST", Path: "/"}, Limits{}); err != nil {
		t.Fatal(err)
	}
	committed := db.committed.Load()
	deadline := time.Now().Add(discardEvery + 5*time.Second)
	for db.discardTs.Load() < committed {
		if time.Now().After(deadline) {
			t.Fatalf("no versions handed to compaction %v after a commit; want within %v", discardEvery+5*time.Second, discardEvery)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
