package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests of Caddy's lifecycle as users drive it (issue #13): rejected
// reloads, a PATCH through the /config/ API, `caddy validate` and `caddy
// adapt` beside a running server, and stop and start under load. Each one
// sends webhooks all along and ends by checking that every event answered
// 200 reached the app.

// lifecycleInbox is the Caddyfile of one server with one inbox, life, at
// /hooks, forwarding to forward with up to concurrency deliveries in
// flight. Quick retries keep a failed attempt from stretching the test.
func lifecycleInbox(adminAddr, data, addr, forward string, concurrency int) string {
	return fmt.Sprintf(`{
	admin %s
	hookinbox {
		storage %s
	}
}
http://%s {
	route /hooks {
		hookinbox life {
			forward %s
			concurrency %d
			retry 100ms 100ms 100ms 100ms 100ms 100ms 100ms 100ms
		}
	}
}
`, adminAddr, data, addr, forward, concurrency)
}

// steadyLoad sends webhooks at a steady rate, one request every interval
// whatever the answers take (so a stall shows in the latencies of every
// request it holds up, not just the one a sender was waiting on), until
// stopped or until it has sent maxSends. It records every request's
// scheduled start, answer and latency from that start.
type steadyLoad struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	samples []loadSample
}

// loadSample is one request of a steadyLoad.
type loadSample struct {
	body     string
	started  time.Time // when it was due to be sent
	took     time.Duration
	answered bool // an HTTP answer came back (of any status)
	acked    bool // 200: the event is stored and must be delivered
	failure  string
}

// maxSends bounds a steadyLoad, so a test that forgets to stop one does not
// send forever; maxOutstanding bounds its requests in flight.
const (
	maxSends       = 20000
	maxOutstanding = 512
)

func startLoad(url, prefix string, interval time.Duration) *steadyLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &steadyLoad{cancel: cancel}
	s := newSender(url)
	outstanding := make(chan struct{}, maxOutstanding)
	l.wg.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; i < maxSends; i++ {
			var due time.Time
			select {
			case <-ctx.Done():
				return
			case due = <-tick.C:
			}
			select {
			case <-ctx.Done():
				return
			case outstanding <- struct{}{}:
			}
			body := fmt.Sprintf(`{"id":"%s-%d"}`, prefix, i)
			l.wg.Go(func() {
				defer func() { <-outstanding }()
				a, err := s.send(body)
				sample := loadSample{body: body, started: due, took: time.Since(due), answered: err == nil, acked: err == nil && a.status == http.StatusOK}
				switch {
				case err != nil:
					sample.failure = err.Error()
				case a.status != http.StatusOK:
					sample.failure = fmt.Sprintf("%d %s", a.status, strings.TrimSpace(a.body))
				}
				l.mu.Lock()
				l.samples = append(l.samples, sample)
				l.mu.Unlock()
			})
		}
	})
	return l
}

func (l *steadyLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

// acked returns the bodies of the requests answered 200 whose request
// started within [from, to) (zero times: no bound).
func (l *steadyLoad) acked(from, to time.Time) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.samples {
		if s.acked && inWindow(s.started, from, to) {
			out = append(out, s.body)
		}
	}
	return out
}

// counts reports the requests sent and those answered 200.
func (l *steadyLoad) counts() (sent, acked int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.samples {
		sent++
		if s.acked {
			acked++
		}
	}
	return sent, acked
}

// failures counts the requests not answered 200, by what came back
// instead (the answer, or the error with addresses and ports removed).
func (l *steadyLoad) failures() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, s := range l.samples {
		if s.failure != "" {
			out[portless.ReplaceAllString(s.failure, "")]++
		}
	}
	return out
}

// logFailures logs what the requests not answered 200 got instead.
func logFailures(t *testing.T, l *steadyLoad) {
	t.Helper()
	if f := l.failures(); len(f) > 0 {
		t.Logf("not answered 200: %v", f)
	}
}

var portless = regexp.MustCompile(`\[?[0-9.:]+\]?:[0-9]+(->[0-9.:]+:[0-9]+)?`)

// p99 is the 99th percentile of the answer latency of the requests that
// started within [from, to) and got an answer, and how many there were.
func (l *steadyLoad) p99(from, to time.Time) (time.Duration, int) {
	l.mu.Lock()
	var took []time.Duration
	for _, s := range l.samples {
		if s.answered && inWindow(s.started, from, to) {
			took = append(took, s.took)
		}
	}
	l.mu.Unlock()
	if len(took) == 0 {
		return 0, 0
	}
	slices.Sort(took)
	return took[min(len(took)-1, len(took)*99/100)], len(took)
}

func inWindow(at, from, to time.Time) bool {
	return (from.IsZero() || !at.Before(from)) && (to.IsZero() || at.Before(to))
}

// waitDelivered waits until missing reports nothing or timeout passes, and
// returns what is still missing.
func waitDelivered(timeout time.Duration, missing func() []string) []string {
	deadline := time.Now().Add(timeout)
	for {
		m := missing()
		if len(m) == 0 || time.Now().After(deadline) {
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// reportLost fails the test with what the app is missing and what the
// store holds, when some acknowledged events were never delivered.
func reportLost(t *testing.T, admin adminClient, inboxName string, acked, missing []string, rec *recorder) {
	t.Helper()
	if len(missing) == 0 {
		return
	}
	delivered, duplicates := rec.counts()
	in := admin.inbox(inboxName)
	t.Errorf("%d of %d events answered 200 were never delivered (first %s, last %s); the app got %d distinct events (%d duplicates); the store's counts for inbox %s: %v, breaker %q",
		len(missing), len(acked), missing[0], missing[len(missing)-1], delivered, duplicates, inboxName, in.Counts, in.breaker())
}

// configJSON returns the running config as GET /config/ shows it.
func (a adminClient) configJSON() any {
	a.t.Helper()
	var cfg any
	a.get("/config/", &cfg)
	return cfg
}

// TestLifecycleRejectedReloadsLeaveTheOldConfigRunning sends steadily while
// ten configs that Caddy rejects are POSTed to /load, cycling through the
// three ways a reload fails: the Caddyfile does not adapt, a hookinbox
// handler fails to provision, or another app fails to start (a site on a
// port another process holds). Each is refused with a 4xx, the old config
// keeps running, every event answered 200 before, during and after is
// delivered, and the senders' p99 latency during the reloads stays within
// 3x (+20ms) of an equal stretch without them.
//
// Caddy starts a config's apps in map order, so a start error of the http
// app reaches the rejected config's hookinbox app (Started, then Stopped)
// only when hookinbox happened to start first: the held port comes four
// times in ten reloads so that this case is all but certain to be covered.
func TestLifecycleRejectedReloadsLeaveTheOldConfigRunning(t *testing.T) {
	bin := caddyBinary(t)
	const (
		reloads = 10
		phase   = 3 * time.Second // the stretch without reloads, and the one with
	)
	stand := newRecorder()
	// One delivery in ten takes a second, as some apps' do: a few are
	// always in flight, and no reload may make the senders wait for them.
	stand.setAnswer(func(r *http.Request, _ string) int {
		wait := 2 * time.Millisecond
		if rand.IntN(10) == 0 {
			wait = time.Second
		}
		select {
		case <-time.After(wait):
			return http.StatusOK
		case <-r.Context().Done():
			return http.StatusGatewayTimeout // cancelled: not a delivery
		}
	})
	app := newAppServer(t, stand)

	dir := t.TempDir()
	addr, adminAddr := freePort(t), freePort(t)
	good := lifecycleInbox(adminAddr, filepath.Join(dir, "data"), addr, app.url("/life"), 32)
	config := writeConfig(t, dir, good)
	srv := startServer(t, bin, config, addr, logFile(t, dir))
	defer srv.kill()
	admin := adminClient{t, adminAddr}
	before := admin.configJSON()

	// A port held by another listener: a config with a site on it
	// provisions, and its http app fails to start.
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	// Each kind, and the words of Caddy's refusal that show the config
	// failed at that step.
	heldSite := good + fmt.Sprintf("http://%s {\n\trespond \"held\"\n}\n", held.Addr())
	rejected := []struct {
		kind, caddyfile, refusal string
	}{
		{"start error of the http app (port held by another process)", heldSite, "address already in use"},
		{"adapt error (unknown hookinbox option)", strings.Replace(good, "retry ", "no_such_option 1\n\t\t\tretry ", 1), "adapting config"},
		{"provision error (forward is not a URL)", strings.Replace(good, "forward "+app.url("/life"), "forward not-a-url", 1), "forward must be an absolute"},
		{"start error of the http app (port held by another process)", heldSite, "address already in use"},
		{"adapt error (unknown directive)", strings.Replace(good, "route /hooks {", "route /hooks {\n\t\tno_such_directive\n", 1), "adapting config"},
		{"provision error (unknown verify scheme)", strings.Replace(good, "retry ", "verify no_such_scheme s3cret\n\t\t\tretry ", 1), "unknown verify scheme"},
	}

	load := startLoad("http://"+addr+"/hooks", "rej", 5*time.Millisecond)
	defer load.stop()

	quietFrom := time.Now()
	time.Sleep(phase)
	reloadFrom := time.Now()
	for i := range reloads {
		r := rejected[i%len(rejected)]
		status, err := admin.do(http.MethodPost, "/load", "text/caddyfile", []byte(r.caddyfile), nil)
		if err == nil || status/100 != 4 || !strings.Contains(err.Error(), r.refusal) {
			t.Errorf("reload %d, %s: answered %d (%v), want a 4xx refusal naming %q", i+1, r.kind, status, err, r.refusal)
		}
		time.Sleep(time.Until(reloadFrom.Add(time.Duration(i+1) * phase / reloads)))
	}
	reloadTo := time.Now()
	time.Sleep(time.Second) // events after the last rejected reload
	load.stop()

	if !srv.alive() {
		t.Fatalf("server exited during the rejected reloads: %v", srv.err)
	}
	if after := admin.configJSON(); !reflect.DeepEqual(before, after) {
		t.Errorf("the running config changed after rejected reloads")
	}

	quiet, quietN := load.p99(quietFrom, reloadFrom)
	reloading, reloadingN := load.p99(reloadFrom, reloadTo)
	t.Logf("answer latency p99: %v without reloads (%d requests), %v during %d rejected reloads (%d requests)",
		quiet, quietN, reloading, reloads, reloadingN)
	if bound := 3*quiet + 20*time.Millisecond; reloading > bound {
		t.Errorf("answer latency p99 during rejected reloads is %v, above 3x the %v without reloads + 20ms (%v)", reloading, quiet, bound)
	}

	acked := load.acked(time.Time{}, time.Time{})
	sent, _ := load.counts()
	if len(acked) < sent*9/10 {
		t.Errorf("only %d of %d requests answered 200 while rejected reloads ran", len(acked), sent)
	}
	if n := len(load.acked(reloadTo, time.Time{})); n == 0 {
		t.Errorf("no request answered 200 after the rejected reloads")
	}
	missing := waitDelivered(10*time.Second, func() []string { return stand.missing(acked) })
	delivered, duplicates := stand.counts()
	t.Logf("%d sent, %d answered 200, %d delivered, %d duplicates", sent, len(acked), delivered, duplicates)
	logFailures(t, load)
	if len(missing) > 0 {
		var lastDelivered time.Time
		load.mu.Lock()
		for _, s := range load.samples {
			if s.acked && stand.delivered(s.body) && s.started.After(lastDelivered) {
				lastDelivered = s.started
			}
		}
		load.mu.Unlock()
		t.Logf("the last event delivered was sent %v after the reloads began", lastDelivered.Sub(reloadFrom).Round(time.Millisecond))
	}
	reportLost(t, admin, "life", acked, missing, stand)
}

// findHandler returns the path under /config/ of the hookinbox handler of
// inbox name in the config cfg, or "" if there is none.
func findHandler(cfg any, path, name string) string {
	switch v := cfg.(type) {
	case map[string]any:
		if v["handler"] == "hookinbox" && v["inbox"] == name {
			return path
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if p := findHandler(v[k], path+"/"+k, name); p != "" {
				return p
			}
		}
	case []any:
		for i, e := range v {
			if p := findHandler(e, path+"/"+strconv.Itoa(i), name); p != "" {
				return p
			}
		}
	}
	return ""
}

// TestLifecyclePatchForwardThroughConfigAPI changes one inbox's forward URL
// with a PATCH of that handler's field through the /config/ API while
// senders send: every event answered 200 is delivered (to the old app or
// the new one), and every event sent after the PATCH was answered goes to
// the new app only.
func TestLifecyclePatchForwardThroughConfigAPI(t *testing.T) {
	bin := caddyBinary(t)
	oldStand, newStand := newRecorder(), newRecorder()
	oldApp, newApp := newAppServer(t, oldStand), newAppServer(t, newStand)

	dir := t.TempDir()
	addr, adminAddr := freePort(t), freePort(t)
	config := writeConfig(t, dir, lifecycleInbox(adminAddr, filepath.Join(dir, "data"), addr, oldApp.url("/life"), 4))
	srv := startServer(t, bin, config, addr, logFile(t, dir))
	defer srv.kill()
	admin := adminClient{t, adminAddr}

	path := findHandler(admin.configJSON(), "/config", "life")
	if path == "" {
		t.Fatalf("no hookinbox handler of inbox life in GET /config/")
	}
	t.Logf("the handler is at %s", path)

	load := startLoad("http://"+addr+"/hooks", "patch", 5*time.Millisecond)
	defer load.stop()
	time.Sleep(2 * time.Second)

	newForward, _ := json.Marshal(newApp.url("/life/new"))
	if _, err := admin.do(http.MethodPatch, path+"/forward", "application/json", newForward, nil); err != nil {
		t.Fatalf("PATCH of the forward URL: %v", err)
	}
	patched := time.Now()
	var got string
	admin.get(path+"/forward", &got)
	if got != newApp.url("/life/new") {
		t.Errorf("after the PATCH the forward URL is %q, want %q", got, newApp.url("/life/new"))
	}
	time.Sleep(2 * time.Second)
	load.stop()

	acked := load.acked(time.Time{}, time.Time{})
	later := load.acked(patched, time.Time{})
	if len(later) == 0 {
		t.Fatalf("no request answered 200 after the PATCH")
	}
	missing := waitDelivered(15*time.Second, func() []string {
		var m []string
		for _, b := range acked {
			if !oldStand.delivered(b) && !newStand.delivered(b) {
				m = append(m, b)
			}
		}
		return m
	})
	sent, _ := load.counts()
	oldN, oldDup := oldStand.counts()
	newN, newDup := newStand.counts()
	t.Logf("%d sent, %d answered 200 (%d after the PATCH); the old app got %d (%d duplicates), the new one %d (%d duplicates)",
		sent, len(acked), len(later), oldN, oldDup, newN, newDup)
	logFailures(t, load)
	if len(missing) > 0 {
		t.Errorf("%d of %d events answered 200 were delivered to neither app (first %s)", len(missing), len(acked), missing[0])
	}
	var toOld, notToNew int
	for _, b := range later {
		if oldStand.delivered(b) {
			toOld++
		}
		if !newStand.delivered(b) {
			notToNew++
		}
	}
	if toOld > 0 || notToNew > 0 {
		t.Errorf("of %d events sent after the PATCH, %d went to the old app and %d never reached the new one", len(later), toOld, notToNew)
	}
	if newN == 0 {
		t.Errorf("the new app received nothing")
	}
}

// storeLock describes the Badger directory lock file: its inode and its
// content (the pid of the process that holds it).
func storeLock(t *testing.T, data string) string {
	t.Helper()
	fi, err := os.Stat(filepath.Join(data, "LOCK"))
	if err != nil {
		t.Fatalf("the store's lock file: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(data, "LOCK"))
	return fmt.Sprintf("inode %d, %q", fi.Sys().(*syscall.Stat_t).Ino, strings.TrimSpace(string(b)))
}

// storeErrors returns the lines of a Caddy log at level error or above that
// mention the store.
func storeErrors(t *testing.T, log string) []string {
	t.Helper()
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var entry struct{ Level string }
		if json.Unmarshal([]byte(line), &entry) != nil {
			continue
		}
		lower := strings.ToLower(line)
		if (entry.Level == "error" || entry.Level == "fatal" || entry.Level == "panic") &&
			(strings.Contains(lower, "store") || strings.Contains(lower, "badger") || strings.Contains(lower, "lock")) {
			out = append(out, line)
		}
	}
	return out
}

// TestLifecycleValidateAndAdaptBesideRunningServer runs `caddy validate` and
// `caddy adapt` (plain and --validate) on the running server's own
// Caddyfile while it holds the store and takes webhooks: each exits 0, the
// store's lock is the server's before and after, nothing about the store
// is logged as an error, and every event answered 200 is delivered.
func TestLifecycleValidateAndAdaptBesideRunningServer(t *testing.T) {
	bin := caddyBinary(t)
	stand := newRecorder()
	app := newAppServer(t, stand)

	dir := t.TempDir()
	addr, adminAddr := freePort(t), freePort(t)
	data := filepath.Join(dir, "data")
	config := writeConfig(t, dir, lifecycleInbox(adminAddr, data, addr, app.url("/life"), 4))
	logs := logFile(t, dir)
	srv := startServer(t, bin, config, addr, logs)
	defer srv.kill()
	admin := adminClient{t, adminAddr}

	load := startLoad("http://"+addr+"/hooks", "val", 5*time.Millisecond)
	defer load.stop()
	time.Sleep(500 * time.Millisecond)
	lock := storeLock(t, data)

	commands := [][]string{
		{"validate", "--config", config, "--adapter", "caddyfile"},
		{"adapt", "--config", config, "--adapter", "caddyfile"},
		{"adapt", "--config", config, "--adapter", "caddyfile", "--validate"},
	}
	var ranTo time.Time
	for round := range 2 {
		for _, args := range commands {
			cmd := exec.Command(bin, args...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "HOME="+dir)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("caddy %s (round %d): %v\n%s", strings.Join(args, " "), round+1, err, out)
				continue
			}
			if args[0] == "adapt" && !strings.Contains(string(out), `"hookinbox"`) {
				t.Errorf("caddy %s: no hookinbox in its output:\n%s", strings.Join(args, " "), out)
			}
		}
		ranTo = time.Now()
	}
	time.Sleep(time.Second)
	load.stop()

	if got := storeLock(t, data); got != lock {
		t.Errorf("the store's lock changed while the commands ran: %s, then %s", lock, got)
	}
	if !srv.alive() {
		t.Fatalf("server exited: %v", srv.err)
	}
	acked := load.acked(time.Time{}, time.Time{})
	sent, _ := load.counts()
	if len(acked) != sent {
		t.Errorf("only %d of %d requests answered 200 while the commands ran", len(acked), sent)
	}
	if len(load.acked(ranTo, time.Time{})) == 0 {
		t.Errorf("no request answered 200 after the commands ran")
	}
	missing := waitDelivered(15*time.Second, func() []string { return stand.missing(acked) })
	delivered, duplicates := stand.counts()
	t.Logf("%d sent, %d answered 200, %d delivered, %d duplicates", sent, len(acked), delivered, duplicates)
	logFailures(t, load)
	reportLost(t, admin, "life", acked, missing, stand)
	if lines := storeErrors(t, logs.Name()); len(lines) > 0 {
		t.Errorf("the server logged %d errors about the store, first: %s", len(lines), lines[0])
	}
}

// TestLifecycleStopAndStartUnderLoad stops the server gracefully mid-load,
// once with `caddy stop` through its admin endpoint and once with SIGTERM,
// and starts it again on the same storage each time while the senders keep
// sending: every event answered 200 before, between or after the stops is
// delivered, and none twice (the deliveries in flight finish within the
// grace period and are recorded).
func TestLifecycleStopAndStartUnderLoad(t *testing.T) {
	bin := caddyBinary(t)
	stand := newRecorder()
	// Slower than the senders: a backlog is pending at each stop, and a
	// delivery is in flight.
	stand.setAnswer(func(r *http.Request, _ string) int {
		select {
		case <-time.After(20 * time.Millisecond):
			return http.StatusOK
		case <-r.Context().Done():
			return http.StatusGatewayTimeout // cancelled: not a delivery
		}
	})
	app := newAppServer(t, stand)

	dir := t.TempDir()
	addr, adminAddr := freePort(t), freePort(t)
	config := writeConfig(t, dir, lifecycleInbox(adminAddr, filepath.Join(dir, "data"), addr, app.url("/life"), 2))
	logs := logFile(t, dir)
	srv := startServer(t, bin, config, addr, logs)
	defer func() { srv.kill() }()
	admin := adminClient{t, adminAddr}

	load := startLoad("http://"+addr+"/hooks", "stop", 5*time.Millisecond)
	defer load.stop()

	stops := []struct {
		how  string
		stop func() error
	}{
		{"caddy stop", func() error {
			out, err := exec.Command(bin, "stop", "--address", adminAddr).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		}},
		{"SIGTERM", func() error { return srv.cmd.Process.Signal(syscall.SIGTERM) }},
	}
	var restarts []time.Time
	for _, s := range stops {
		time.Sleep(1500 * time.Millisecond)
		pending := admin.inbox("life").Counts["pending"]
		start := time.Now()
		if err := s.stop(); err != nil {
			t.Fatalf("%s: %v", s.how, err)
		}
		select {
		case <-srv.exited:
		case <-time.After(stopGrace + 5*time.Second):
			t.Fatalf("still running %v after %s", stopGrace+5*time.Second, s.how)
		}
		t.Logf("%s: stopped in %v with %d events pending", s.how, time.Since(start).Round(10*time.Millisecond), pending)
		if pending == 0 {
			t.Errorf("%s: no event was pending at the stop: the test did not stop the server under load", s.how)
		}
		srv = startServer(t, bin, config, addr, logs)
		restarts = append(restarts, time.Now())
	}
	time.Sleep(1500 * time.Millisecond)
	load.stop()

	acked := load.acked(time.Time{}, time.Time{})
	sent, _ := load.counts()
	for i, at := range restarts {
		if len(load.acked(at, time.Time{})) == 0 {
			t.Errorf("no request answered 200 after restart %d", i+1)
		}
	}
	missing := waitDelivered(20*time.Second, func() []string { return stand.missing(acked) })
	delivered, duplicates := stand.counts()
	t.Logf("%d sent, %d answered 200 (the rest refused while stopped), %d delivered, %d duplicates", sent, len(acked), delivered, duplicates)
	logFailures(t, load)
	reportLost(t, admin, "life", acked, missing, stand)
	if duplicates != 0 {
		t.Errorf("%d duplicate deliveries across graceful stops: a delivery that finished during a stop was not recorded", duplicates)
	}
}
