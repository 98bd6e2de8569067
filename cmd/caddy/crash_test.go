package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The crash harness runs the real binary, sends it webhooks from several
// concurrent senders, kills it with SIGKILL at random moments, restarts it,
// and at the end checks that every event that was answered 200 reached the
// app at least once. HOOKINBOX_CRASH_CYCLES sets how many kills (default 3
// in `go test`, so CI runs the short form).
//
// `go test ./...` shows a package's output only when it fails, so the
// summary line is also written to the file named by HOOKINBOX_CRASH_SUMMARY
// (default: hookinbox-crash-summary.txt in the system's temporary
// directory), for CI to print or keep.

// crashConcurrency is the inbox's concurrency: at most that many deliveries
// are in flight (and unrecorded) when the process is killed.
const crashConcurrency = 8

func TestCrashLosesNoAcknowledgedEvent(t *testing.T) {
	bin := caddyBinary(t)
	cycles := 3
	if s := os.Getenv("HOOKINBOX_CRASH_CYCLES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("HOOKINBOX_CRASH_CYCLES=%q is not a positive number", s)
		}
		cycles = n
	}

	stand := newRecorder()
	// A little latency so some deliveries are in flight at each kill.
	stand.setAnswer(func(*http.Request, string) int {
		time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
		return http.StatusOK
	})
	backend := httptest.NewServer(stand)
	defer backend.Close()

	dir := t.TempDir()
	addr := freePort(t)
	config := writeConfig(t, dir, fmt.Sprintf(`{
	admin off
	hookinbox {
		storage %s
	}
}
http://%s {
	hookinbox crash {
		verify hotmart crash-hottok
		forward %s
		concurrency %d
		retry 100ms 100ms 100ms 100ms 100ms 100ms 100ms 100ms 100ms 100ms
	}
}
`, filepath.Join(dir, "data"), addr, backend.URL, crashConcurrency))
	logs := logFile(t, dir)

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	var (
		ackedMu sync.Mutex
		acked   []string
		sent    atomic.Int64
		seq     atomic.Int64
	)
	sendOne := func() {
		// Every other body is large enough for the store's value log,
		// so both places a body can live are killed mid-write.
		n := seq.Add(1)
		body := fmt.Sprintf(`{"id":"evt-%d","pad":"%s"}`, n, strings.Repeat("x", int(n%2)*1500))
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/", strings.NewReader(body))
		req.Header.Set("X-HOTMART-HOTTOK", "crash-hottok")
		sent.Add(1)
		resp, err := client.Do(req)
		if err != nil {
			return // the server died under this request: not acknowledged
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			ackedMu.Lock()
			acked = append(acked, body)
			ackedMu.Unlock()
		}
	}
	ackedCount := func() int {
		ackedMu.Lock()
		defer ackedMu.Unlock()
		return len(acked)
	}

	for cycle := range cycles {
		srv := startServer(t, bin, config, addr, logs)
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(200+rand.IntN(600))*time.Millisecond)
		var senders sync.WaitGroup
		for range 6 {
			senders.Go(func() {
				for ctx.Err() == nil {
					sendOne()
				}
			})
		}
		<-ctx.Done()
		// Kill while the senders are still mid-request.
		srv.kill()
		cancel()
		senders.Wait()
		t.Logf("cycle %d: %d acknowledged so far", cycle+1, ackedCount())
	}

	// Last start: no more kills; everything acknowledged must arrive.
	srv := startServer(t, bin, config, addr, logs)
	defer srv.kill()
	var lost []string
	deadline := time.Now().Add(60 * time.Second)
	for {
		lost = stand.missing(acked)
		if len(lost) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	delivered, duplicates := stand.counts()
	summary := fmt.Sprintf("crash harness: cycles=%d sent=%d acknowledged=%d delivered=%d lost=%d duplicates=%d",
		cycles, sent.Load(), len(acked), delivered, len(lost), duplicates)
	t.Log(summary)
	writeSummary(t, summary)

	if len(acked) == 0 {
		t.Fatal("no request was acknowledged: the harness tested nothing")
	}
	if len(lost) > 0 {
		t.Fatalf("%d acknowledged events were never delivered, e.g. %s", len(lost), lost[0])
	}
	// A kill can only repeat what was in flight and not yet recorded: the
	// attempts at the app (at most the inbox's concurrency) and the answered
	// ones whose record waits for the commit under way, which the freed
	// slots refill a few times over while one fsync runs. Runs here give
	// 3 to 19 over 3 kills; four slots' worth per kill is the bound.
	if bound := cycles * 4 * crashConcurrency; duplicates > bound {
		t.Errorf("%d duplicate deliveries over %d kills; at most %d (4 × concurrency %d per kill) can be explained",
			duplicates, cycles, bound, crashConcurrency)
	}
}

// writeSummary appends the harness's summary line to a file that outlives
// the test, since `go test ./...` hides the log of a passing package.
func writeSummary(t *testing.T, line string) {
	t.Helper()
	path := os.Getenv("HOOKINBOX_CRASH_SUMMARY")
	if path == "" {
		path = filepath.Join(os.TempDir(), "hookinbox-crash-summary.txt")
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Logf("summary not written to %s: %v", path, err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s\n", time.Now().UTC().Format(time.RFC3339), line)
}
