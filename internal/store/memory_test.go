package store

import (
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
