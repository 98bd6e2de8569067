package store

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestMillionPending checks the store at scale: a million pending events
// of 1 KiB, bounded memory, a quick reopen, fast claims. It takes a few
// minutes and a few GB of disk, so it runs only with HOOKINBOX_SCALE=1
// (HOOKINBOX_SCALE_N overrides the count).
func TestMillionPending(t *testing.T) {
	if os.Getenv("HOOKINBOX_SCALE") == "" {
		t.Skip("set HOOKINBOX_SCALE=1 to run")
	}
	n := 1_000_000
	if s := os.Getenv("HOOKINBOX_SCALE_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	if dir := os.Getenv("HOOKINBOX_SCALE_DIR"); dir != "" {
		servePhase(t, dir, n)
		return
	}
	dir := t.TempDir()
	if keep := os.Getenv("HOOKINBOX_SCALE_KEEP"); keep != "" {
		dir = keep // reuse a data set built before, for profiling
		if _, err := os.Stat(keep); err == nil {
			restart(t, dir)
			return
		}
	}
	db, err := Open(dir, Options{Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 1024)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var peak atomic.Int64
	for range 512 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				e := &Event{Inbox: "big", Method: "POST", Path: "/hooks/big", Body: body}
				if _, _, err := db.Enqueue(context.Background(), e, Limits{Dedupe: time.Hour}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	stopRSS := make(chan struct{})
	go func() {
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		for {
			select {
			case <-stopRSS:
				return
			case <-tk.C:
				peak.Store(max(peak.Load(), rssKiB()))
			}
		}
	}()
	wg.Wait()
	close(stopRSS)
	t.Logf("enqueued %d in %v (%v/event); peak RSS while enqueueing %d MiB; now %s",
		n, time.Since(start), time.Since(start)/time.Duration(n), peak.Load()>>10, memory())
	if p := os.Getenv("HOOKINBOX_SCALE_HEAP"); p != "" {
		f, err := os.Create(p + ".build")
		if err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	restart(t, dir)
}

// restart runs the serving phase in a fresh process, as after a restart.
func restart(t *testing.T, dir string) {
	cmd := exec.Command(os.Args[0], "-test.run", "^TestMillionPending$", "-test.v")
	cmd.Env = append(os.Environ(), "HOOKINBOX_SCALE_DIR="+dir)
	out, err := cmd.CombinedOutput()
	t.Logf("after restart:\n%s", out)
	if err != nil {
		t.Fatal(err)
	}
}

func servePhase(t *testing.T, dir string, n int) {
	body := make([]byte, 1024)
	before := rssKiB()
	start := time.Now()
	db, err := Open(dir, Options{Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, _, err := db.Enqueue(context.Background(), &Event{Inbox: "big", Body: body}, Limits{}); err != nil {
		t.Fatal(err)
	}
	ready := time.Since(start)
	t.Logf("reopen to first enqueue: %v; %s (before open %d MiB)", ready, memory(), before>>10)
	if ready > 3*time.Second {
		t.Errorf("reopen to first enqueue took %v, want < 3s", ready)
	}
	if p := db.Pending("big"); p != n+1 {
		t.Errorf("Pending = %d, want %d", p, n+1)
	}

	// Deliver a chunk: claims must stay fast as delivered events pile up
	// at the head of the due index.
	const k = 20000
	start = time.Now()
	var slowest, claiming time.Duration
	for range k {
		t0 := time.Now()
		e, _, err := db.Claim("big", time.Now(), false)
		if err != nil || e == nil {
			t.Fatalf("Claim = %v, %v", e, err)
		}
		slowest = max(slowest, time.Since(t0))
		claiming += time.Since(t0)
		if _, err := db.Record(e.ID, Attempt{At: time.Now(), Outcome: OutcomeOK}, Next{Delivered: true}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d claim+record in %v; claim %v each, slowest %v; %s", k, time.Since(start), claiming/k, slowest, memory())
	start = time.Now()
	for range 1000 {
		e, _, err := db.Claim("big", time.Now(), true)
		if err != nil || e == nil {
			t.Fatalf("ordered Claim = %v, %v", e, err)
		}
		db.Release(e.ID)
	}
	t.Logf("1000 ordered claims: %v each", time.Since(start)/1000)
	start = time.Now()
	if _, err := db.Inboxes(); err != nil {
		t.Fatal(err)
	}
	evs, _, err := db.List(Query{Inbox: "big", State: Pending, Limit: 100})
	if err != nil || len(evs) != 100 {
		t.Fatalf("List = %d, %v", len(evs), err)
	}
	t.Logf("Inboxes + List(100): %v; %s", time.Since(start), memory())
	if p := os.Getenv("HOOKINBOX_SCALE_HEAP"); p != "" {
		f, err := os.Create(p)
		if err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	if rss := rssKiB() >> 10; rss > 300 {
		t.Errorf("RSS %d MiB, want well under 300", rss)
	}
}

// memory describes this process's memory use.
func memory() string {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b, _ := os.ReadFile("/proc/self/status")
	var parts []string
	for _, line := range strings.Split(string(b), "\n") {
		for _, f := range []string{"VmRSS:", "RssAnon:", "RssFile:"} {
			if strings.HasPrefix(line, f) {
				parts = append(parts, strings.Join(strings.Fields(line), " "))
			}
		}
	}
	return fmt.Sprintf("%s; Go heap in use %d MiB, held idle %d MiB, stacks %d MiB, runtime %d MiB",
		strings.Join(parts, ", "), m.HeapInuse>>20, (m.HeapIdle-m.HeapReleased)>>20, m.StackSys>>20,
		(m.Sys-m.HeapSys-m.StackSys)>>20)
}

// rssKiB is this process's resident set size.
func rssKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
