package caddymodule

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/hookinbox/hookinbox/internal/store"
)

// These tests run a real Caddy in-process (caddytest, admin on
// localhost:2999) with a real Badger directory and real HTTP backends.
// Each test loads its own config, so the process sees many reloads.

const hookURL = "http://localhost:9080/hooks/test"

// recorder is a stand-in app: it answers with the statuses it is given, in
// turn (the last one for ever), and keeps what it received.
type recorder struct {
	mu       sync.Mutex
	statuses []int
	got      []received
	srv      *httptest.Server
}

type received struct {
	header http.Header
	body   []byte
	query  string
	path   string
}

func newRecorder(t *testing.T, statuses ...int) *recorder {
	t.Helper()
	rec := &recorder{statuses: statuses}
	rec.srv = httptest.NewServer(http.HandlerFunc(rec.serve))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.got = append(rec.got, received{header: r.Header.Clone(), body: body, query: r.URL.RawQuery, path: r.URL.Path})
	status := http.StatusOK
	if len(rec.statuses) > 0 {
		status = rec.statuses[0]
		if len(rec.statuses) > 1 {
			rec.statuses = rec.statuses[1:]
		}
	}
	rec.mu.Unlock()
	if status >= 300 && status < 400 {
		w.Header().Set("Location", "/elsewhere")
	}
	w.WriteHeader(status)
}

func (rec *recorder) requests() []received {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]received(nil), rec.got...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// inboxConfig is a Caddyfile with one inbox "test" on /hooks/test that
// checks a hottok and forwards to backend with the given extra options.
func inboxConfig(storage, backend, options string) string {
	return fmt.Sprintf(`{
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1s
	skip_install_trust
	hookinbox {
		storage %s
	}
}
http://localhost:9080 {
	route /hooks/test {
		hookinbox test {
			verify hotmart test-hottok
			forward %s
			%s
		}
	}
}
`, storage, backend, options)
}

func startCaddy(t *testing.T, config string) *caddytest.Tester {
	t.Helper()
	tester := caddytest.NewTester(t)
	tester.InitServer(config, "caddyfile")
	// The config outlives the test in the shared in-process Caddy: unload
	// it before the test's storage directory is removed.
	t.Cleanup(func() { unloadConfig(t) })
	return tester
}

// unloadConfig replaces the running config with one that has only the
// admin endpoint, which closes the test's store.
func unloadConfig(t *testing.T) {
	t.Helper()
	resp, err := http.Post("http://localhost:2999/load", "application/json",
		strings.NewReader(`{"admin":{"listen":"localhost:2999"}}`))
	if err != nil {
		t.Errorf("unloading config: %v", err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("unloading config: status %d", resp.StatusCode)
	}
}

// send posts one webhook with the right hottok.
func send(t *testing.T, body string, header ...string) (int, string) {
	t.Helper()
	status, answer, err := trySend(body, header...)
	if err != nil {
		t.Fatalf("sending webhook: %v", err)
	}
	return status, answer
}

// trySend is send for senders that may see a transport error (a reload
// closes idle keep-alive connections; a sender would send again).
func trySend(body string, header ...string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodPost, hookURL, strings.NewReader(body))
	req.Header.Set("X-HOTMART-HOTTOK", "test-hottok")
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(answer), err
}

// activeStore is the store of the running config.
func activeStore(t *testing.T) store.Store {
	t.Helper()
	app, err := caddy.ActiveContext().AppIfConfigured("hookinbox")
	if err != nil {
		t.Fatalf("hookinbox app: %v", err)
	}
	return app.(*App).engine.store()
}

func eventID(t *testing.T, answer string) string {
	t.Helper()
	const prefix = `{"id":"`
	if !strings.HasPrefix(answer, prefix) || !strings.HasSuffix(answer, `"}`) {
		t.Fatalf("answer %q is not {\"id\":…}", answer)
	}
	return strings.TrimSuffix(strings.TrimPrefix(answer, prefix), `"}`)
}

func TestDeliveredOnFirstTry(t *testing.T) {
	app := newRecorder(t)
	startCaddy(t, inboxConfig(t.TempDir(), app.srv.URL+"/hotmart", ""))

	body := `{"id":"evt-first","event":"PURCHASE_APPROVED"}`
	req, _ := http.NewRequest(http.MethodPost, hookURL+"?src=hotmart", strings.NewReader(body))
	req.Header.Set("X-HOTMART-HOTTOK", "test-hottok")
	req.Header.Set("Hookinbox-Verified", "forged")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200 (%s)", resp.StatusCode, answer)
	}
	id := eventID(t, string(answer))

	waitFor(t, "delivery", 5*time.Second, func() bool { return len(app.requests()) == 1 })
	got := app.requests()[0]
	if string(got.body) != body {
		t.Errorf("body = %q, want %q", got.body, body)
	}
	if got.path != "/hotmart" || got.query != "src=hotmart" {
		t.Errorf("delivered to %s?%s, want /hotmart?src=hotmart", got.path, got.query)
	}
	want := map[string]string{
		"Hookinbox-Id":       id,
		"Hookinbox-Attempt":  "1",
		"Hookinbox-Verified": "hotmart",
		"X-Hotmart-Hottok":   "test-hottok",
	}
	for name, value := range want {
		if got.header.Get(name) != value {
			t.Errorf("header %s = %q, want %q", name, got.header.Get(name), value)
		}
	}
	if _, err := time.Parse(time.RFC3339, got.header.Get("Hookinbox-Received-At")); err != nil {
		t.Errorf("Hookinbox-Received-At %q is not RFC 3339: %v", got.header.Get("Hookinbox-Received-At"), err)
	}
	waitFor(t, "delivered state", 5*time.Second, func() bool {
		e, _, err := activeStore(t).Get(id)
		return err == nil && e.State == store.Delivered
	})
}

func TestRejectedRequestsAreNotStored(t *testing.T) {
	app := newRecorder(t)
	startCaddy(t, inboxConfig(t.TempDir(), app.srv.URL, "max_body 1KiB"))

	cases := []struct {
		name   string
		method string
		token  string
		body   string
		status int
		reason string
	}{
		{"wrong hottok is 401", http.MethodPost, "not-it", `{}`, 401, "token_mismatch"},
		{"missing hottok is 401", http.MethodPost, "", `{}`, 401, "token_missing"},
		{"GET is 405", http.MethodGet, "test-hottok", ``, 405, "method_not_allowed"},
		{"body over max_body is 413", http.MethodPost, "test-hottok", strings.Repeat("x", 1025), 413, "body_too_large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, hookURL, strings.NewReader(tc.body))
			if tc.token != "" {
				req.Header.Set("X-HOTMART-HOTTOK", tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, tc.status, answer)
			}
			if want := fmt.Sprintf(`{"error":%q}`, tc.reason); strings.TrimSpace(string(answer)) != want {
				t.Errorf("answer = %s, want %s", answer, want)
			}
			if strings.Contains(string(answer), "test-hottok") {
				t.Errorf("answer leaks the hottok: %s", answer)
			}
		})
	}
	stats, err := activeStore(t).Inboxes()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stats {
		for state, n := range s.Counts {
			if n != 0 {
				t.Errorf("inbox %s has %d %s events; rejected requests must not be stored", s.Inbox, n, state)
			}
		}
	}
	if n := len(app.requests()); n != 0 {
		t.Errorf("app received %d requests, want 0", n)
	}
}

func TestRetriedUntilDelivered(t *testing.T) {
	app := newRecorder(t, 500, 200)
	startCaddy(t, inboxConfig(t.TempDir(), app.srv.URL, "retry 50ms 50ms"))

	status, answer := send(t, `{"id":"evt-retry"}`)
	if status != 200 {
		t.Fatalf("status = %d (%s)", status, answer)
	}
	id := eventID(t, answer)
	waitFor(t, "second attempt", 5*time.Second, func() bool { return len(app.requests()) == 2 })
	got := app.requests()
	for i, r := range got {
		if r.header.Get("Hookinbox-Id") != id {
			t.Errorf("attempt %d Hookinbox-Id = %q, want %q", i+1, r.header.Get("Hookinbox-Id"), id)
		}
		if r.header.Get("Hookinbox-Attempt") != fmt.Sprint(i+1) {
			t.Errorf("attempt %d has Hookinbox-Attempt %q", i+1, r.header.Get("Hookinbox-Attempt"))
		}
	}
	var attempts []store.Attempt
	waitFor(t, "delivered state", 5*time.Second, func() bool {
		e, a, err := activeStore(t).Get(id)
		attempts = a
		return err == nil && e.State == store.Delivered
	})
	if len(attempts) != 2 || attempts[0].Outcome != store.OutcomeServerError || attempts[0].Status != 500 || attempts[1].Outcome != store.OutcomeOK {
		t.Errorf("attempts = %+v, want server_error 500 then ok", attempts)
	}
}

func TestBackendDownThenUp(t *testing.T) {
	// A port that nothing listens on yet.
	l := httptest.NewUnstartedServer(nil)
	addr := l.Listener.Addr().String()
	l.Listener.Close()

	startCaddy(t, inboxConfig(t.TempDir(), "http://"+addr, "retry 100ms 100ms 100ms 100ms 100ms 100ms"))
	status, answer := send(t, `{"id":"evt-down"}`)
	if status != 200 {
		t.Fatalf("status = %d (%s): a sender must get 200 while the app is down", status, answer)
	}
	id := eventID(t, answer)
	waitFor(t, "a failed attempt", 5*time.Second, func() bool {
		_, a, _ := activeStore(t).Get(id)
		return len(a) >= 1
	})
	_, attempts, _ := activeStore(t).Get(id)
	if attempts[0].Outcome != store.OutcomeConnect {
		t.Errorf("first attempt outcome = %q, want connect", attempts[0].Outcome)
	}

	app := newRecorder(t)
	up := &http.Server{Handler: http.HandlerFunc(app.serve)}
	ln := listenOn(t, addr)
	go up.Serve(ln)
	t.Cleanup(func() { up.Close() })

	waitFor(t, "delivery once the app is up", 10*time.Second, func() bool { return len(app.requests()) == 1 })
}

func TestRedirectIsAFailureAndNotFollowed(t *testing.T) {
	app := newRecorder(t, 302)
	startCaddy(t, inboxConfig(t.TempDir(), app.srv.URL+"/hook", "retry 50ms"))

	status, answer := send(t, `{"id":"evt-302"}`)
	if status != 200 {
		t.Fatalf("status = %d (%s)", status, answer)
	}
	id := eventID(t, answer)
	var attempts []store.Attempt
	waitFor(t, "dead after two redirects", 5*time.Second, func() bool {
		e, a, err := activeStore(t).Get(id)
		attempts = a
		return err == nil && e.State == store.Dead
	})
	for _, a := range attempts {
		if a.Outcome != store.OutcomeRedirect || a.Status != 302 {
			t.Errorf("attempt %d: outcome %q status %d, want redirect 302", a.N, a.Outcome, a.Status)
		}
	}
	for _, r := range app.requests() {
		if r.path != "/hook" {
			t.Errorf("the redirect was followed to %s", r.path)
		}
	}
	if n := len(app.requests()); n != 2 {
		t.Errorf("app saw %d requests, want 2 (two attempts, no redirect followed)", n)
	}
}

func TestRetriesExhaustedGiveDead(t *testing.T) {
	app := newRecorder(t, 503)
	startCaddy(t, inboxConfig(t.TempDir(), app.srv.URL, "retry 20ms 20ms 20ms"))

	status, answer := send(t, `{"id":"evt-dead"}`)
	if status != 200 {
		t.Fatalf("status = %d (%s)", status, answer)
	}
	id := eventID(t, answer)
	var attempts []store.Attempt
	waitFor(t, "dead", 10*time.Second, func() bool {
		e, a, err := activeStore(t).Get(id)
		attempts = a
		return err == nil && e.State == store.Dead
	})
	if len(attempts) != 4 {
		t.Errorf("%d attempts recorded, want 4 (one, then three retries)", len(attempts))
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(app.requests()); n != 4 {
		t.Errorf("app saw %d attempts, want 4: a dead event is not retried", n)
	}
}

func TestConcurrentCopiesOfOneEventAreStoredOnce(t *testing.T) {
	app := newRecorder(t)
	startCaddy(t, inboxConfig(t.TempDir(), app.srv.URL, ""))

	const copies = 20
	ids := make([]string, copies)
	var wg sync.WaitGroup
	for i := range copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, answer := send(t, `{"id":"evt-same","n":1}`)
			if status != 200 {
				t.Errorf("copy %d: status %d (%s)", i, status, answer)
				return
			}
			ids[i] = eventID(t, answer)
		}()
	}
	wg.Wait()
	for i, id := range ids {
		if id != ids[0] {
			t.Fatalf("copy %d got id %s, copy 0 got %s: a duplicate must be answered with the first id", i, id, ids[0])
		}
	}
	waitFor(t, "delivery", 5*time.Second, func() bool { return len(app.requests()) >= 1 })
	time.Sleep(200 * time.Millisecond)
	if n := len(app.requests()); n != 1 {
		t.Errorf("app received %d copies, want 1", n)
	}
}

// TestReloadUnderTrafficLosesNothing reloads the config (changing the
// forward URL, the retry schedule and the concurrency) while senders keep
// sending, then checks that every accepted event reached one of the apps
// exactly as often as it should, and that the workers were not doubled.
func TestReloadUnderTrafficLosesNothing(t *testing.T) {
	var inFlight, maxInFlight atomic.Int64
	var mu sync.Mutex
	seen := map[string]int{}
	slowApp := func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		seen[r.Header.Get("Hookinbox-Id")]++
		mu.Unlock()
	}
	appA := httptest.NewServer(http.HandlerFunc(slowApp))
	defer appA.Close()
	appB := httptest.NewServer(http.HandlerFunc(slowApp))
	defer appB.Close()

	dir := t.TempDir()
	configs := []string{
		inboxConfig(dir, appA.URL, "concurrency 2\nretry 50ms"),
		inboxConfig(dir, appB.URL, "concurrency 3\nretry 100ms 100ms"),
	}
	tester := startCaddy(t, configs[0])

	var accepted sync.Map
	stop := make(chan struct{})
	var senders sync.WaitGroup
	for s := range 4 {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				status, answer, err := trySend(fmt.Sprintf(`{"id":"evt-%d-%d"}`, s, i))
				if err == nil && status == 200 {
					accepted.Store(eventID(t, answer), true)
				}
			}
		}()
	}
	for i := range 6 {
		time.Sleep(150 * time.Millisecond)
		tester.InitServer(configs[(i+1)%2], "caddyfile")
	}
	close(stop)
	senders.Wait()

	total := 0
	accepted.Range(func(_, _ any) bool { total++; return true })
	if total == 0 {
		t.Fatal("no event was accepted")
	}
	waitFor(t, "every accepted event delivered", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		missing := 0
		accepted.Range(func(id, _ any) bool {
			if seen[id.(string)] == 0 {
				missing++
			}
			return true
		})
		return missing == 0
	})
	if m := maxInFlight.Load(); m > 3 {
		t.Errorf("%d deliveries in flight at once; the largest configured concurrency is 3, so workers were doubled", m)
	}
	t.Logf("%d events accepted across 6 reloads, all delivered; max in flight %d", total, maxInFlight.Load())
}

func TestCustomRespond(t *testing.T) {
	app := newRecorder(t)
	startCaddy(t, inboxConfig(t.TempDir(), app.srv.URL, `respond 202 "queued {http.hookinbox.event_id}"`))
	status, answer := send(t, `{"id":"evt-respond"}`)
	if status != 202 || !strings.HasPrefix(answer, "queued ") || len(answer) <= len("queued ") {
		t.Fatalf("answer = %d %q, want 202 \"queued <id>\"", status, answer)
	}
	id := strings.TrimPrefix(answer, "queued ")
	waitFor(t, "delivery", 5*time.Second, func() bool {
		got := app.requests()
		return len(got) == 1 && got[0].header.Get("Hookinbox-Id") == id
	})
}

// listenOn listens on addr, which a test freed a moment ago.
func listenOn(t *testing.T, addr string) net.Listener {
	t.Helper()
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("listening on %s: %v", addr, err)
	return nil
}
