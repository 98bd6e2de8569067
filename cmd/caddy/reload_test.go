package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestReloadsUnderLoadLoseNothing reloads the config a hundred times through
// the admin API while senders keep sending, changing each inbox's forward
// URL, retry schedule and concurrency, with an app that fails now and then:
// every request answered 200 is delivered, the ordered inbox never has two
// deliveries in flight and delivers in arrival order, and the other inbox
// stays within the concurrency of the config of the moment (the largest
// one configured). HOOKINBOX_RELOADS sets how many reloads (default 100).
func TestReloadsUnderLoadLoseNothing(t *testing.T) {
	bin := caddyBinary(t)
	reloads := 100
	if s := os.Getenv("HOOKINBOX_RELOADS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("HOOKINBOX_RELOADS=%q is not a positive number", s)
		}
		reloads = n
	}
	const maxConcurrency = 4

	stand := newRecorder()
	stand.setAnswer(func(*http.Request, string) int {
		time.Sleep(time.Duration(1+rand.IntN(4)) * time.Millisecond)
		if rand.IntN(20) == 0 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	app := newAppServer(t, stand)

	dir := t.TempDir()
	addr, adminAddr := freePort(t), freePort(t)
	data := filepath.Join(dir, "data")
	retries := []string{
		"50ms 50ms 50ms 50ms 50ms 50ms 50ms 50ms 50ms 50ms",
		"20ms 40ms 80ms 160ms 320ms 320ms 320ms 320ms 320ms 320ms",
		"100ms 100ms 100ms 100ms 100ms 100ms 100ms 100ms 100ms 100ms 100ms 100ms",
	}
	caddyfile := func(i int) string {
		return fmt.Sprintf(`{
	admin %s
	hookinbox {
		storage %s
	}
}
http://%s {
	route /plain {
		hookinbox plain {
			forward %s
			retry %s
			concurrency %d
		}
	}
	route /ord {
		hookinbox ord {
			forward %s
			retry %s
			concurrency %d
			ordered
		}
	}
}
`, adminAddr, data, addr,
			app.url(fmt.Sprintf("/plain/v%d", i%3)), retries[i%3], 1+i%maxConcurrency,
			app.url(fmt.Sprintf("/ord/v%d", i%2)), retries[(i+1)%3], 1+(i+1)%maxConcurrency)
	}
	config := writeConfig(t, dir, caddyfile(0))
	srv := startServer(t, bin, config, addr, logFile(t, dir))
	defer srv.kill()
	admin := adminClient{t, adminAddr}

	var mu sync.Mutex
	var acked []string
	var ordAcked []int
	sendErrors, sent := 0, 0
	ctx, stop := context.WithCancel(context.Background())
	var senders sync.WaitGroup
	send := func(s *sender, body string) bool {
		a, err := s.send(body)
		mu.Lock()
		defer mu.Unlock()
		sent++
		if err != nil || a.status != http.StatusOK {
			// A reload closes idle keep-alive connections: a request
			// sent on one at that moment fails and was not acknowledged.
			sendErrors++
			return false
		}
		acked = append(acked, body)
		return true
	}
	for w := range 3 {
		senders.Go(func() {
			s := newSender("http://" + addr + "/plain")
			for i := 0; ctx.Err() == nil; i++ {
				send(s, fmt.Sprintf(`{"plain":"%d-%d"}`, w, i))
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	// One sender, one request at a time: its arrival order is its order.
	senders.Go(func() {
		s := newSender("http://" + addr + "/ord")
		for i := 0; ctx.Err() == nil; i++ {
			if send(s, fmt.Sprintf(`{"ord":%d}`, i)) {
				mu.Lock()
				ordAcked = append(ordAcked, i)
				mu.Unlock()
			}
			time.Sleep(5 * time.Millisecond)
		}
	})

	start := time.Now()
	for i := 1; i <= reloads; i++ {
		if err := admin.load(caddyfile(i)); err != nil {
			stop()
			senders.Wait()
			t.Fatalf("reload %d: %v", i, err)
		}
		time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
	}
	stop()
	senders.Wait()
	took := time.Since(start)

	waitFor(t, "every acknowledged event to be delivered", 60*time.Second, func() bool {
		return len(stand.missing(acked)) == 0
	})
	mu.Lock()
	defer mu.Unlock()
	delivered, duplicates := stand.counts()
	t.Logf("%d reloads in %v: %d sent, %d acknowledged, %d not (closed connections), %d delivered; peak in flight plain=%d ord=%d; duplicates %d",
		reloads, took.Round(100*time.Millisecond), sent, len(acked), sendErrors, delivered,
		stand.peakOf("plain"), stand.peakOf("ord"), duplicates)
	if len(acked) < sent/2 {
		t.Errorf("only %d of %d requests acknowledged during reloads", len(acked), sent)
	}
	if p := stand.peakOf("ord"); p > 1 {
		t.Errorf("ordered inbox: %d deliveries in flight at once, want one", p)
	}
	if p := stand.peakOf("plain"); p > maxConcurrency {
		t.Errorf("inbox plain: %d deliveries in flight at once, above any configured concurrency (%d)", p, maxConcurrency)
	}
	checkOrder(t, "ord", stand.orderOf("ord"), ordAcked)
}

// checkOrder asserts that the deliveries of an ordered inbox (bodies
// {"<inbox>":n}, in the order the app took them) follow arrival order: n
// never goes down, a repeat only follows itself, and every acknowledged n
// is there.
func checkOrder(t *testing.T, inbox string, delivered []string, acked []int) {
	t.Helper()
	seen := map[int]bool{}
	last := -1
	for i, body := range delivered {
		var n int
		if _, err := fmt.Sscanf(body, `{"`+inbox+`":%d}`, &n); err != nil {
			t.Fatalf("delivery %d: unexpected body %q", i, body)
		}
		if n < last {
			t.Fatalf("ordered inbox %s: event %d delivered after event %d (delivery %d of %d)", inbox, n, last, i+1, len(delivered))
		}
		last = n
		seen[n] = true
	}
	for _, n := range acked {
		if !seen[n] {
			t.Fatalf("ordered inbox %s: acknowledged event %d never delivered", inbox, n)
		}
	}
}
