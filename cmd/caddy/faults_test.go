package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The faults an unlucky operator and an attacker meet, tried on the real
// binary: what the sender gets, and what the app receives.

// oneInboxConfig is a server with one inbox named in, forwarding to app.
func oneInboxConfig(adminAddr, storage, addr, app, options string) string {
	return fmt.Sprintf(`{
	admin %s
	hookinbox {
		storage %s
	}
}
http://%s {
	hookinbox in {
		forward %s
		%s
	}
}
`, adminAddr, storage, addr, app, options)
}

// A burst of concurrent requests to an inbox with max_pending stores
// exactly max_pending events: the cap is checked where events are stored.
func TestMaxPendingHoldsUnderABurst(t *testing.T) {
	bin := caddyBinary(t)
	dir := t.TempDir()
	addr, adminAddr := freePort(t), freePort(t)
	const maxPending, burst = 10, 200
	config := writeConfig(t, dir, oneInboxConfig(adminAddr, filepath.Join(dir, "data"), addr,
		"http://"+freePort(t)+"/", fmt.Sprintf("retry 1h\n\t\tmax_pending %d", maxPending)))
	srv := startServer(t, bin, config, addr, logFile(t, dir))
	defer srv.kill()

	s := newSender("http://" + addr + "/")
	s.client.Transport = &http.Transport{MaxIdleConnsPerHost: burst}
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	start := make(chan struct{})
	for i := range burst {
		wg.Go(func() {
			<-start
			a, err := s.send(fmt.Sprintf(`{"n":%d}`, i))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				statuses[-1]++
				return
			}
			statuses[a.status]++
		})
	}
	close(start)
	wg.Wait()
	if statuses[http.StatusOK] != maxPending || statuses[http.StatusServiceUnavailable] != burst-maxPending {
		t.Errorf("answers to %d concurrent requests: %v; want %d × 200 and the rest 503", burst, statuses, maxPending)
	}
	in := adminClient{t, adminAddr}.inbox("in")
	if n := in.Counts["pending"] + in.Counts["delivering"]; n != maxPending {
		t.Errorf("inbox holds %d events waiting, want %d", n, maxPending)
	}
}

// A replay while the event's attempt is in flight is acknowledged and
// done: the app gets the event again once the attempt in flight ends.
func TestReplayDuringADeliveryDeliversAgain(t *testing.T) {
	bin := caddyBinary(t)
	dir := t.TempDir()
	rec := newRecorder()
	var mu sync.Mutex
	var attempts []string
	rec.setAnswer(func(r *http.Request, _ string) int {
		mu.Lock()
		attempts = append(attempts, r.Header.Get("Hookinbox-Attempt"))
		first := len(attempts) == 1
		mu.Unlock()
		if first {
			time.Sleep(3 * time.Second)
		}
		return http.StatusOK
	})
	app := newAppServer(t, rec)
	addr, adminAddr := freePort(t), freePort(t)
	config := writeConfig(t, dir, oneInboxConfig(adminAddr, filepath.Join(dir, "data"), addr, app.url("/in"), ""))
	srv := startServer(t, bin, config, addr, logFile(t, dir))
	defer srv.kill()
	admin := adminClient{t, adminAddr}

	a, err := newSender("http://" + addr + "/").send(`{"replayed":"in flight"}`)
	if err != nil || a.status != http.StatusOK {
		t.Fatalf("send: %v %d", err, a.status)
	}
	waitFor(t, "the first attempt in flight", 5*time.Second, func() bool { return rec.inFlightOf("in") == 1 })
	time.Sleep(time.Second)
	var replayed struct{ Replayed int }
	if _, err := admin.do(http.MethodPost, "/hookinbox/events/"+a.eventID()+"/replay", "", nil, &replayed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replay delivered", 15*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(attempts) >= 2
	})
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 2 || attempts[1] != "2" {
		t.Errorf("the app got attempts %v; want [1 2]: the attempt in flight, then the replay", attempts)
	}
}

// A checkpoint that cannot create its file (a directory stands in its
// place, as real a failure as a permission error, and one root meets too)
// does not fail the store: senders keep getting 200, the app keeps getting
// the events, and checkpoints resume once the file can be created.
func TestCheckpointThatCannotCreateItsFileIsNotFatal(t *testing.T) {
	bin := caddyBinary(t)
	dir := t.TempDir()
	rec := newRecorder()
	app := newAppServer(t, rec)
	addr, adminAddr := freePort(t), freePort(t)
	storage := filepath.Join(dir, "data")
	config := writeConfig(t, dir, oneInboxConfig(adminAddr, storage, addr, app.url("/in"), "max_body 2MiB"))
	logs := logFile(t, dir)
	srv := startServer(t, bin, config, addr, logs)
	defer srv.kill()

	// The first event: the store is open.
	s := newSender("http://" + addr + "/")
	sent := []string{`{"n":"first"}`}
	if a, err := s.send(sent[0]); err != nil || a.status != http.StatusOK {
		t.Fatalf("first request: %v %d", err, a.status)
	}
	blocker := filepath.Join(storage, "journal", "checkpoint.tmp")
	if err := os.Mkdir(blocker, 0o700); err != nil {
		t.Fatal(err)
	}
	// A full journal segment (16 MiB) starts a checkpoint: send 24 MiB.
	pad := strings.Repeat("x", 1<<20)
	for i := range 24 {
		body := fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, pad)
		a, err := s.send(body)
		if err != nil || a.status != http.StatusOK {
			t.Fatalf("request %d: %v %d %s", i, err, a.status, a.body)
		}
		sent = append(sent, body)
	}
	waitFor(t, "a checkpoint to fail", 10*time.Second, func() bool {
		b, _ := os.ReadFile(logs.Name())
		return strings.Contains(string(b), "checkpoint failed")
	})
	for i := range 5 {
		body := fmt.Sprintf(`{"after":%d}`, i)
		a, err := s.send(body)
		if err != nil || a.status != http.StatusOK {
			t.Fatalf("after a failed checkpoint, request %d: %v %d %s; want 200", i, err, a.status, a.body)
		}
		sent = append(sent, body)
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every event delivered", 20*time.Second, func() bool { return len(rec.missing(sent)) == 0 })
	b, _ := os.ReadFile(logs.Name())
	if strings.Contains(string(b), "inbox store failed") {
		t.Error("the store was failed by a checkpoint that could not create its file")
	}
}

// After an outage the breaker waits before its next probe; a replay, which
// a user makes once the app is fixed, probes at once.
func TestReplayProbesAnOpenBreakerAtOnce(t *testing.T) {
	bin := caddyBinary(t)
	dir := t.TempDir()
	rec := newRecorder()
	app := newAppServer(t, rec)
	app.down()
	addr, adminAddr := freePort(t), freePort(t)
	config := writeConfig(t, dir, oneInboxConfig(adminAddr, filepath.Join(dir, "data"), addr, app.url("/in"),
		"retry 100ms 100ms 100ms 100ms 100ms 100ms 100ms 100ms 100ms 100ms\n\t\tconcurrency 1"))
	srv := startServer(t, bin, config, addr, logFile(t, dir))
	defer srv.kill()
	admin := adminClient{t, adminAddr}

	s := newSender("http://" + addr + "/")
	var sent []string
	var first string
	for i := range 3 {
		body := fmt.Sprintf(`{"n":%d}`, i)
		a, err := s.send(body)
		if err != nil || a.status != http.StatusOK {
			t.Fatalf("send: %v %d", err, a.status)
		}
		if first == "" {
			first = a.eventID()
		}
		sent = append(sent, body)
	}
	// Five failures open the breaker for 5 s; its first probe fails too,
	// and the next one is 10 s away.
	waitFor(t, "the breaker open after a failed probe", 20*time.Second, func() bool {
		in := admin.inbox("in")
		return in.breaker() == "open" && in.Breaker.Failures >= 6
	})
	app.up()
	start := time.Now()
	if _, err := admin.do(http.MethodPost, "/hookinbox/events/"+first+"/replay", "", nil, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every event delivered", 20*time.Second, func() bool { return len(rec.missing(sent)) == 0 })
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("delivered %s after the replay; want at once, not after the breaker's wait", took)
	}
}
