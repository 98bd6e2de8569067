package store

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
	const rounds = 5
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range rounds {
		idle()
	}
	runtime.ReadMemStats(&after)
	perRound := (after.TotalAlloc - before.TotalAlloc) / rounds
	t.Logf("idle work with %d events pending: %d KiB allocated per round", pending, perRound>>10)
	if limit := uint64(1 << 20); perRound > limit {
		t.Errorf("idle work with %d events pending allocated %d KiB per round, want at most %d KiB",
			pending, perRound>>10, limit>>10)
	}
}
