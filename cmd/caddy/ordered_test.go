package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestOrderedInboxKeepsArrivalOrder sends an ordered inbox a numbered
// stream while the app fails some events (the head of the line) a few times
// before taking them, and kills the server with SIGKILL in the middle of
// the stream: the app takes the events in arrival order, across the
// retries and the restart (an event in flight at the kill may come twice,
// right after itself, never after a later one).
func TestOrderedInboxKeepsArrivalOrder(t *testing.T) {
	bin := caddyBinary(t)
	const (
		events    = 120
		failFirst = 2 // attempts the app fails on every 10th event
	)
	stand := newRecorder()
	var mu sync.Mutex
	tries := map[string]int{}
	stand.setAnswer(func(_ *http.Request, body string) int {
		mu.Lock()
		tries[body]++
		n := tries[body]
		mu.Unlock()
		var seq int
		fmt.Sscanf(body, `{"ord":%d}`, &seq)
		time.Sleep(3 * time.Millisecond)
		if seq%10 == 3 && n <= failFirst {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	app := newAppServer(t, stand)

	dir := t.TempDir()
	addr := freePort(t)
	config := writeConfig(t, dir, fmt.Sprintf(`{
	admin off
	hookinbox {
		storage %s
	}
}
http://%s {
	hookinbox ord {
		forward %s
		ordered
		retry 30ms 30ms 30ms 30ms 30ms 30ms 30ms 30ms 30ms 30ms
	}
}
`, filepath.Join(dir, "data"), addr, app.url("/ord")))
	logs := logFile(t, dir)
	srv := startServer(t, bin, config, addr, logs)
	defer func() { srv.kill() }()

	s := newSender("http://" + addr + "/")
	var acked []int
	sendRange := func(from, to int) {
		for i := from; i < to; i++ {
			if a, err := s.send(fmt.Sprintf(`{"ord":%d}`, i)); err == nil && a.status == http.StatusOK {
				acked = append(acked, i)
			}
		}
	}
	sendRange(0, events/2)
	// Kill with a backlog in the line: the app has not taken everything.
	if len(stand.orderOf("ord")) >= len(acked) {
		t.Log("the app kept up with the sender: the kill hits no backlog")
	}
	srv.kill()
	beforeKill := len(stand.orderOf("ord"))
	srv = startServer(t, bin, config, addr, logs)
	sendRange(events/2, events)

	waitFor(t, "every acknowledged event to be delivered", 60*time.Second, func() bool {
		return len(stand.orderOf("ord")) >= len(acked) && func() bool {
			seen := map[string]bool{}
			for _, b := range stand.orderOf("ord") {
				seen[b] = true
			}
			for _, n := range acked {
				if !seen[fmt.Sprintf(`{"ord":%d}`, n)] {
					return false
				}
			}
			return true
		}()
	})
	order := stand.orderOf("ord")
	mu.Lock()
	failed := 0
	for _, n := range tries {
		failed += min(n-1, failFirst)
	}
	mu.Unlock()
	t.Logf("%d acknowledged, %d deliveries (%d before the kill), %d failed attempts retried", len(acked), len(order), beforeKill, failed)
	if failed == 0 {
		t.Error("the app failed no attempt: the test did not hold the line")
	}
	checkOrder(t, "ord", order, acked)
	if p := stand.peakOf("ord"); p > 1 {
		t.Errorf("%d deliveries in flight at once, want one", p)
	}
}
