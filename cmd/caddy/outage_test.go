package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Breaker tuning of internal/deliver (threshold 5, first cooldown 5s): the
// bound on attempts during an outage follows from them.
const (
	breakerThreshold = 5
	breakerCooldown  = 5 * time.Second
)

// TestOutageKeepsAcceptingAndDrainsAtConcurrency takes the app down for a
// stretch, once refusing connections and once hanging past the inbox's
// timeout, while senders keep sending: every request is answered 200; the
// circuit breaker keeps the attempts at the dead app to a handful (one probe
// at a time) instead of one per event and retry; once the app is back every
// event is delivered, never more than the inbox's concurrency at once.
// HOOKINBOX_OUTAGE sets the outage's length (default 8s).
func TestOutageKeepsAcceptingAndDrainsAtConcurrency(t *testing.T) {
	bin := caddyBinary(t)
	outage := 8 * time.Second
	if s := os.Getenv("HOOKINBOX_OUTAGE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("HOOKINBOX_OUTAGE=%q is not a positive duration", s)
		}
		outage = d
	}
	const concurrency = 4

	stand := newRecorder()
	var hang sync.Mutex // held while the app hangs
	hanging := false
	stand.setAnswer(func(r *http.Request, _ string) int {
		hang.Lock()
		h := hanging
		hang.Unlock()
		if h && pathGroup(r.URL.Path) == "hanging" {
			<-r.Context().Done()             // until hookinbox's timeout gives up
			return http.StatusGatewayTimeout // nobody reads it: not a delivery
		}
		time.Sleep(20 * time.Millisecond) // long enough to overlap at concurrency
		return http.StatusOK
	})
	refusing := newAppServer(t, stand)
	slow := newAppServer(t, stand)

	dir := t.TempDir()
	addr, adminAddr := freePort(t), freePort(t)
	inboxes := []string{"refused", "hanging"}
	config := writeConfig(t, dir, fmt.Sprintf(`{
	admin %s
	hookinbox {
		storage %s
	}
}
http://%s {
	route /refused {
		hookinbox refused {
			forward %s
			timeout 1s
			concurrency %d
			retry 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms
		}
	}
	route /hanging {
		hookinbox hanging {
			forward %s
			timeout 1s
			concurrency %d
			retry 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms
		}
	}
}
`, adminAddr, filepath.Join(dir, "data"), addr, refusing.url("/refused"), concurrency, slow.url("/hanging"), concurrency))
	srv := startServer(t, bin, config, addr, logFile(t, dir))
	defer srv.kill()
	admin := adminClient{t, adminAddr}

	var mu sync.Mutex
	var acked []string
	var failures []string
	sendAll := func(n int, tag string) {
		var wg sync.WaitGroup
		for _, name := range inboxes {
			wg.Go(func() {
				s := newSender("http://" + addr + "/" + name)
				for i := range n {
					body := fmt.Sprintf(`{"inbox":%q,"tag":%q,"n":%d}`, name, tag, i)
					a, err := s.send(body)
					mu.Lock()
					if err != nil || a.status != http.StatusOK {
						failures = append(failures, fmt.Sprintf("%s: %v %d", body, err, a.status))
					} else {
						acked = append(acked, body)
					}
					mu.Unlock()
					time.Sleep(40 * time.Millisecond)
				}
			})
		}
		wg.Wait()
	}

	// Before: the app is up.
	sendAll(10, "before")
	waitFor(t, "the first events to be delivered", 20*time.Second, func() bool {
		return len(stand.missing(acked)) == 0
	})

	// The outage.
	before := map[string]int{}
	for _, name := range inboxes {
		_, before[name] = admin.attempts(name)
	}
	refusing.down()
	hang.Lock()
	hanging = true
	hang.Unlock()
	start := time.Now()
	sending := make(chan struct{})
	go func() {
		defer close(sending)
		sendAll(int(outage/(40*time.Millisecond)), "during")
	}()
	// Once the breaker is open and the attempts that were in flight have
	// timed out, the hanging app sees at most the one probe at a time.
	waitFor(t, "the breakers to open", outage, func() bool {
		return isOpen(admin.inbox("refused").breaker()) && isOpen(admin.inbox("hanging").breaker())
	})
	time.Sleep(1500 * time.Millisecond) // the inbox's 1s timeout, and some
	stand.resetPeak("hanging")
	<-sending
	if rest := outage - time.Since(start); rest > 0 {
		time.Sleep(rest)
	}
	probePeak := stand.peakOf("hanging")
	spent := map[string]int{}
	for _, name := range inboxes {
		_, n := admin.attempts(name)
		spent[name] = n - before[name]
	}

	// The app is back.
	stand.resetPeak("refused")
	stand.resetPeak("hanging")
	refusing.up()
	hang.Lock()
	hanging = false
	hang.Unlock()
	waitFor(t, "every acknowledged event to be delivered after the outage", 4*breakerCooldown+30*time.Second, func() bool {
		return len(stand.missing(acked)) == 0
	})
	drained := time.Since(start) - outage

	mu.Lock()
	defer mu.Unlock()
	_, duplicates := stand.counts()
	t.Logf("outage %v: %d acknowledged, %d not; attempts at the dead app: refused=%d hanging=%d; probes in flight at once: %d; drained %v after; peak in flight: refused=%d hanging=%d; duplicates %d",
		outage, len(acked), len(failures), spent["refused"], spent["hanging"], probePeak, drained.Round(100*time.Millisecond),
		stand.peakOf("refused"), stand.peakOf("hanging"), duplicates)
	if duplicates > 0 {
		t.Errorf("%d duplicate deliveries without a crash", duplicates)
	}
	if len(failures) > 0 {
		t.Errorf("%d requests not answered 200 during the outage, e.g. %s", len(failures), failures[0])
	}
	// Without a breaker each event would be tried every 200ms. With it:
	// the failures that open it, the attempts already in flight, and one
	// probe per cooldown (which doubles each time).
	bound := breakerThreshold + concurrency + int(outage/breakerCooldown) + 2
	for _, name := range inboxes {
		if spent[name] > bound {
			t.Errorf("inbox %s: %d attempts at the app while it was down, want at most %d", name, spent[name], bound)
		}
	}
	if probePeak > 1 {
		t.Errorf("%d attempts in flight at once at the hanging app with the breaker open, want one probe at a time", probePeak)
	}
	for _, name := range inboxes {
		if p := stand.peakOf(name); p > concurrency {
			t.Errorf("inbox %s: %d deliveries in flight at once after the outage, want at most its concurrency %d", name, p, concurrency)
		}
	}
}

func isOpen(breaker string) bool { return breaker == "open" || breaker == "half_open" }
