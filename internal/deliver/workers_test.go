package deliver

import (
	"bytes"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// goroutineID is the number runtime.Stack prints for the calling goroutine.
func goroutineID() uint64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	buf, _ = bytes.CutPrefix(buf, []byte("goroutine "))
	n, _ := strconv.ParseUint(string(buf[:bytes.IndexByte(buf, ' ')]), 10, 64)
	return n
}

// Attempts one after another run on the same goroutine, and stop ends the
// workers.
func TestWorkersAreReusedAndStop(t *testing.T) {
	before := runtime.NumGoroutine()
	w := newWorkers()
	seen := make(map[uint64]bool)
	for range 100 {
		got := make(chan uint64)
		w.run(func() { got <- goroutineID() })
		seen[<-got] = true
		time.Sleep(time.Millisecond) // the worker gets back to waiting
	}
	if len(seen) > 3 {
		t.Errorf("100 attempts, one at a time, ran on %d goroutines", len(seen))
	}
	w.stop()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after stop, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Attempts that overlap each get a goroutine: none waits for another.
func TestWorkersRunOverlappingAttemptsAtOnce(t *testing.T) {
	w := newWorkers()
	defer w.stop()
	release := make(chan struct{})
	started := make(chan struct{})
	for range 8 {
		w.run(func() {
			started <- struct{}{}
			<-release
		})
	}
	for i := range 8 {
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of 8 overlapping attempts started", i)
		}
	}
	close(release)
}
