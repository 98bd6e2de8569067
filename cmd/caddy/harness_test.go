package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The tests of this package run the real binary, as a user would, on free
// loopback ports: they never use caddytest, whose fixed ports would clash
// with other test processes. This file holds what they share.

// buildCaddy builds this command once per test binary.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func caddyBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the real binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hookinbox-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "caddy")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// server is one run of the binary.
type server struct {
	cmd    *exec.Cmd
	addr   string
	exited chan struct{}
	err    error // of Wait, once exited is closed
}

func startServer(t *testing.T, bin, config, addr string, logs io.Writer) *server {
	t.Helper()
	cmd := exec.Command(bin, "run", "--config", config, "--adapter", "caddyfile")
	cmd.Stdout, cmd.Stderr = logs, logs
	// Relative paths in the config (the example's ./hookinbox-data) and
	// Caddy's own data and config directories land beside the config.
	cmd.Dir = filepath.Dir(config)
	cmd.Env = append(os.Environ(), "HOME="+filepath.Dir(config))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, addr: addr, exited: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return s
		}
		select {
		case <-s.exited:
			t.Fatalf("server exited before listening on %s: %v", addr, s.err)
		default:
		}
		if time.Now().After(deadline) {
			s.kill()
			t.Fatalf("server did not listen on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// alive tells whether the process is still running.
func (s *server) alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// logFile creates the file the binary's output goes to, in the test's
// directory, and prints its tail when the test fails.
func logFile(t *testing.T, dir string) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "caddy.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(f.Name())
			if len(b) > 8<<10 {
				b = b[len(b)-8<<10:]
			}
			t.Logf("tail of the server log:\n%s", b)
		}
	})
	return f
}

// writeConfig writes a Caddyfile into dir and returns its path.
func writeConfig(t *testing.T, dir, text string) string {
	t.Helper()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sender posts webhooks to the binary.
type sender struct {
	client *http.Client
	url    string
	header http.Header
}

func newSender(url string, header ...string) *sender {
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	return &sender{
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
		url:    url,
		header: h,
	}
}

// answer is what the binary answered to one request.
type answer struct {
	status int
	header http.Header
	body   string
}

func (s *sender) send(body string) (answer, error) {
	req, err := http.NewRequest(http.MethodPost, s.url, strings.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	for k, v := range s.header {
		req.Header[k] = v
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

// eventID is the id of an accepted event, from the default answer.
func (a answer) eventID() string {
	var v struct{ ID string }
	_ = json.Unmarshal([]byte(a.body), &v)
	return v.ID
}

// adminClient talks to the binary's admin endpoint.
type adminClient struct {
	t    *testing.T
	addr string
}

// do sends one request and decodes a JSON answer into out (if not nil).
func (a adminClient) do(method, path, contentType string, body []byte, out any) (int, error) {
	req, err := http.NewRequest(method, "http://"+a.addr+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.StatusCode, nil
}

func (a adminClient) get(path string, out any) {
	a.t.Helper()
	if _, err := a.do(http.MethodGet, path, "", nil, out); err != nil {
		a.t.Fatal(err)
	}
}

// load replaces the running config (a reload) with a Caddyfile.
func (a adminClient) load(caddyfile string) error {
	_, err := a.do(http.MethodPost, "/load", "text/caddyfile", []byte(caddyfile), nil)
	return err
}

// inbox is one inbox as GET /hookinbox/inboxes shows it.
type inbox struct {
	Inbox   string         `json:"inbox"`
	Counts  map[string]int `json:"counts"`
	Breaker *struct {
		State    string `json:"state"`
		Failures int    `json:"failures"`
	} `json:"breaker"`
}

// breaker is the state of the inbox's circuit breaker ("" if none is shown).
func (in inbox) breaker() string {
	if in.Breaker == nil {
		return ""
	}
	return in.Breaker.State
}

func (a adminClient) inbox(name string) inbox {
	a.t.Helper()
	var v struct{ Inboxes []inbox }
	a.get("/hookinbox/inboxes", &v)
	for _, in := range v.Inboxes {
		if in.Inbox == name {
			return in
		}
	}
	return inbox{Inbox: name, Counts: map[string]int{}}
}

// attempts sums the attempts made at every event of an inbox.
func (a adminClient) attempts(name string) (events, attempts int) {
	a.t.Helper()
	cursor := ""
	for {
		var page struct {
			Events []struct {
				Attempts int `json:"attempts"`
			} `json:"events"`
			Next string `json:"next_cursor"`
		}
		a.get("/hookinbox/events?inbox="+name+"&limit=1000&cursor="+cursor, &page)
		for _, e := range page.Events {
			events++
			attempts += e.Attempts
		}
		if page.Next == "" || len(page.Events) == 0 {
			return events, attempts
		}
		cursor = url.QueryEscape(page.Next)
	}
}

// recorder is a stand-in application: it counts the deliveries of each
// event (by body), the deliveries in flight (overall and at their peak, per
// URL path), and answers as told.
type recorder struct {
	mu       sync.Mutex
	seen     map[string]int      // body -> deliveries answered 2xx
	order    map[string][]string // path -> bodies in the order delivered with 2xx
	inFlight map[string]int
	peak     map[string]int
	total    atomic.Int64 // requests received
	// answer decides each request's fate; nil: 200 at once.
	answer func(r *http.Request, body string) int
}

func newRecorder() *recorder {
	return &recorder{
		seen:     map[string]int{},
		order:    map[string][]string{},
		inFlight: map[string]int{},
		peak:     map[string]int{},
	}
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.total.Add(1)
	key := pathGroup(r.URL.Path)
	rec.mu.Lock()
	rec.inFlight[key]++
	rec.peak[key] = max(rec.peak[key], rec.inFlight[key])
	answer := rec.answer
	rec.mu.Unlock()
	status := http.StatusOK
	if answer != nil {
		status = answer(r, string(body))
	}
	rec.mu.Lock()
	rec.inFlight[key]--
	if status/100 == 2 {
		rec.seen[string(body)]++
		rec.order[key] = append(rec.order[key], string(body))
	}
	rec.mu.Unlock()
	w.WriteHeader(status)
}

// pathGroup is the first segment of a path: an inbox forwards to
// /<inbox>/<anything>, so the app counts per inbox across forward changes.
func pathGroup(p string) string {
	p = strings.TrimPrefix(p, "/")
	if i := strings.IndexByte(p, '/'); i >= 0 {
		p = p[:i]
	}
	return p
}

func (rec *recorder) setAnswer(f func(r *http.Request, body string) int) {
	rec.mu.Lock()
	rec.answer = f
	rec.mu.Unlock()
}

func (rec *recorder) delivered(body string) bool {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.seen[body] > 0
}

// missing lists the bodies among want that were never delivered.
func (rec *recorder) missing(want []string) []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []string
	for _, b := range want {
		if rec.seen[b] == 0 {
			out = append(out, b)
		}
	}
	return out
}

// counts reports distinct events delivered and deliveries beyond the first.
func (rec *recorder) counts() (distinct, duplicates int) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, n := range rec.seen {
		distinct++
		duplicates += n - 1
	}
	return distinct, duplicates
}

func (rec *recorder) peakOf(group string) int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.peak[group]
}

func (rec *recorder) inFlightOf(group string) int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.inFlight[group]
}

func (rec *recorder) resetPeak(group string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.peak[group] = rec.inFlight[group]
}

func (rec *recorder) orderOf(group string) []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.order[group]...)
}

// appServer serves a recorder on a fixed loopback address that can be
// taken down (connections refused) and brought back.
type appServer struct {
	t    *testing.T
	addr string
	h    http.Handler
	mu   sync.Mutex
	srv  *http.Server
}

func newAppServer(t *testing.T, h http.Handler) *appServer {
	t.Helper()
	a := &appServer{t: t, addr: freePort(t), h: h}
	a.up()
	t.Cleanup(a.down)
	return a
}

func (a *appServer) url(path string) string { return "http://" + a.addr + path }

func (a *appServer) up() {
	a.t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv != nil {
		return
	}
	var l net.Listener
	var err error
	for range 100 { // the port may linger for a moment after down
		if l, err = net.Listen("tcp", a.addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		a.t.Fatalf("app listening again on %s: %v", a.addr, err)
	}
	a.srv = &http.Server{Handler: a.h}
	go a.srv.Serve(l)
}

// down closes the listener and every connection: deliveries are refused.
func (a *appServer) down() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv != nil {
		a.srv.Close()
		a.srv = nil
	}
}
