package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// buildCaddy builds ./cmd/caddy of the module the harness runs in, so the
// figures are those of the binary users get from xcaddy.
func buildCaddy(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "caddy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
	}
	return bin, nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside a Go module: run hookbench from the hookinbox repository")
	}
	return filepath.Dir(mod), nil
}

// hasHookinbox reports whether bin has the hookinbox handler, so a plain
// Caddy (given with -caddy) still yields the reference figures.
func hasHookinbox(bin string) (bool, error) {
	out, err := exec.Command(bin, "list-modules").Output()
	if err != nil {
		return false, fmt.Errorf("%s list-modules: %v", bin, err)
	}
	return bytes.Contains(out, []byte("http.handlers.hookinbox")), nil
}

// freeAddr returns a loopback address nothing listens on. Another process
// could take it before Caddy does; on a benchmark machine that is rare
// enough to be a failed run, not a wrong figure.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// site is one server block of a generated Caddyfile.
type site struct {
	addr       string // host:port it listens on
	directives string
}

// caddyfile writes a whole config: admin on its own port (for pprof), no
// config autosave, and store (the lines of hookinbox's global option, ""
// for none: a Caddy without the module cannot parse it).
func caddyfile(admin, store string, sites []site) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin %s\n\tpersist_config off\n", admin)
	if store != "" {
		b.WriteString("\thookinbox {\n")
		for _, line := range strings.Split(store, "\n") {
			fmt.Fprintf(&b, "\t\t%s\n", line)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	for _, s := range sites {
		fmt.Fprintf(&b, "\nhttp://%s {\n", s.addr)
		for _, line := range strings.Split(strings.TrimSpace(s.directives), "\n") {
			fmt.Fprintf(&b, "\t%s\n", line)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// plainCaddyfile is a config without hookinbox.
func plainCaddyfile(admin string, sites []site) string { return caddyfile(admin, "", sites) }

// badgerStore is the global option's store: Badger in dir.
func badgerStore(dir string) string { return "storage " + dir }

// natsStore is the global option's store: JetStream on servers, every
// event on replicas of them before its 200.
func natsStore(servers []string, replicas int) string {
	return fmt.Sprintf("store nats {\n\tservers %s\n\treplicas %d\n}", strings.Join(servers, " "), replicas)
}

// oneInbox is a whole config, on free ports, of one site that is one
// inbox: what the scale and tmpfs servers run.
func oneInbox(verify, storage, inbox, forward string, extra ...string) (config, admin, addr string, err error) {
	if admin, err = freeAddr(); err != nil {
		return "", "", "", err
	}
	if addr, err = freeAddr(); err != nil {
		return "", "", "", err
	}
	return caddyfile(admin, badgerStore(storage), []site{{addr, inboxDirectives(verify, inbox, forward, extra...)}}), admin, addr, nil
}

// inboxDirectives is the hookinbox handler the benchmark measures: the
// run's verify directive, the default options except those in extra.
func inboxDirectives(verify, inbox, forward string, extra ...string) string {
	lines := []string{
		"hookinbox " + inbox + " {",
		"\t" + verify,
		"\tforward " + forward,
	}
	for _, e := range extra {
		lines = append(lines, "\t"+e)
	}
	return strings.Join(append(lines, "}"), "\n")
}

// caddyServer is one running caddy process.
type caddyServer struct {
	cmd     *exec.Cmd
	admin   string
	started time.Time
	exited  chan struct{}
	forget  func() // its onExit hook
}

// startCaddy writes config to dir/name.Caddyfile and runs bin on it. Its
// output goes to dir/name.log; HOME and the XDG directories point into dir
// so nothing is written outside it.
func startCaddy(bin, dir, name, config, admin string) (*caddyServer, error) {
	path := filepath.Join(dir, name+".Caddyfile")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		return nil, err
	}
	logs, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.Env = append(os.Environ(),
		"HOME="+dir,
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"XDG_DATA_HOME="+filepath.Join(dir, "data"),
	)
	cmd.SysProcAttr = dieWithHarness()
	s := &caddyServer{cmd: cmd, admin: admin, exited: make(chan struct{})}
	s.started = time.Now()
	if err := cmd.Start(); err != nil {
		logs.Close()
		return nil, fmt.Errorf("starting %s: %v", bin, err)
	}
	s.forget = onExit(func() { _ = cmd.Process.Kill() })
	go func() {
		_ = cmd.Wait()
		logs.Close()
		close(s.exited)
	}()
	return s, nil
}

// waitListening waits until every addr accepts connections.
func (s *caddyServer) waitListening(timeout time.Duration, addrs ...string) error {
	deadline := time.Now().Add(timeout)
	for _, addr := range addrs {
		for {
			select {
			case <-s.exited:
				return fmt.Errorf("caddy exited before listening on %s (see its log)", addr)
			default:
			}
			c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("caddy did not listen on %s within %v", addr, timeout)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// stop ends the process gracefully (SIGTERM lets hookinbox close its store
// as a user's restart would) and kills it if it takes too long.
func (s *caddyServer) stop() {
	if s == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.forget()
}

// memStatus is the process's memory, in bytes, from /proc/<pid>/status.
type memStatus struct {
	RSS  int64 `json:"rss_bytes"`      // VmRSS: what the target is about
	Peak int64 `json:"peak_rss_bytes"` // VmHWM
	// Anon and File split RSS: Badger maps its files, and their pages
	// count in RSS although the kernel can drop them when memory is short.
	Anon int64 `json:"rss_anon_bytes"`
	File int64 `json:"rss_file_bytes"`
	// Mapped splits File by what the files are (mappedKind), from
	// /proc/<pid>/smaps.
	Mapped map[string]int64 `json:"rss_file_by_kind,omitempty"`
	// GoHeap is the Go heap in use; GoFree is heap the Go runtime holds
	// free and has not yet returned to the system (from /debug/vars).
	// They explain most of Anon.
	GoHeap int64 `json:"go_heap_inuse_bytes"`
	GoFree int64 `json:"go_heap_free_held_bytes"`
}

// goMemory reads the Go runtime's heap figures from the admin endpoint's
// /debug/vars: in use, and free but not yet returned to the system.
func (s *caddyServer) goMemory() (inuse, free int64, err error) {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/vars", s.admin))
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var vars struct {
		Memstats struct{ HeapInuse, HeapIdle, HeapReleased int64 }
	}
	if err := json.NewDecoder(resp.Body).Decode(&vars); err != nil {
		return 0, 0, fmt.Errorf("/debug/vars: %v", err)
	}
	m := vars.Memstats
	return m.HeapInuse, m.HeapIdle - m.HeapReleased, nil
}

// mappedKind names a mapped file for the memory split: Badger's tables,
// value log and memtable logs, the server's own binary, or another file.
func mappedKind(path, binary string) string {
	switch {
	case path == binary:
		return "binary"
	case strings.HasSuffix(path, ".sst"):
		return "tables"
	case strings.HasSuffix(path, ".vlog"):
		return "value log"
	case strings.HasSuffix(path, ".mem"):
		return "memtable logs"
	}
	return "other"
}

// cpuTime is the CPU time s has used, all its threads.
func (s *caddyServer) cpuTime() (time.Duration, error) { return processCPU(s.cmd.Process.Pid) }

// parseStatCPU reads utime and stime from a /proc/<pid>/stat line. The
// command name, in parentheses, may hold spaces: fields count from after
// its closing parenthesis.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	fields := strings.Fields(stat[i+1:])
	if i < 0 || len(fields) < 13 {
		return 0, fmt.Errorf("stat: %q", stat)
	}
	var ticks int64
	for _, f := range fields[11:13] { // utime, stime: fields 14 and 15
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat: %q", stat)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// mappedFiles sums the resident pages of s's mapped files by mappedKind.
func (s *caddyServer) mappedFiles() (map[string]int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", s.cmd.Process.Pid))
	if err != nil {
		return nil, err
	}
	binary, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", s.cmd.Process.Pid))
	return parseSmaps(string(data), binary)
}

// parseSmaps sums the Rss of /proc/<pid>/smaps's file mappings by
// mappedKind; anonymous mappings are left out.
func parseSmaps(smaps, binary string) (map[string]int64, error) {
	byKind := map[string]int64{}
	kind := ""
	for _, line := range strings.Split(smaps, "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":"):
			// A mapping's header: range, perms, offset, device, inode[, path].
			kind = ""
			if len(fields) >= 6 && strings.HasPrefix(fields[5], "/") {
				kind = mappedKind(fields[5], binary)
			}
		case len(fields) == 3 && fields[0] == "Rss:" && kind != "":
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("smaps: %q", line)
			}
			byKind[kind] += kb << 10
		}
	}
	return byKind, nil
}

func (s *caddyServer) memory() (memStatus, error) {
	var m memStatus
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return m, err
	}
	fields := map[string]*int64{"VmRSS": &m.RSS, "VmHWM": &m.Peak, "RssAnon": &m.Anon, "RssFile": &m.File}
	for _, line := range strings.Split(string(data), "\n") {
		key, val, ok := strings.Cut(line, ":")
		into := fields[key]
		if !ok || into == nil {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return m, fmt.Errorf("%s: %q", key, val)
		}
		*into = kb << 10
	}
	if m.Mapped, err = s.mappedFiles(); err != nil {
		return m, err
	}
	m.GoHeap, m.GoFree, err = s.goMemory()
	return m, err
}

// pprof saves one of the admin endpoint's profiles: "profile?seconds=N"
// for CPU, "heap" for memory.
func (s *caddyServer) pprof(profile, path string) error {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/%s", s.admin, profile))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("pprof: %s: %s", resp.Status, msg)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// deliveredPath is where inboxes forward, so the no-op app tells
// deliveries from the requests that reverse_proxy passes on.
const deliveredPath = "/delivered"

// app is a stand-in application. It answers after delay, or once its gate
// opens, and notes when each benchmark event was first delivered to it.
type app struct {
	addr  string
	delay time.Duration
	srv   *http.Server
	hits  atomic.Int64

	mu       sync.Mutex
	gate     chan struct{} // while non-nil and open, deliveries wait
	arrived  map[int64]time.Time
	order    []time.Time // first arrivals, in order
	watchers map[int64]chan struct{}
}

func startApp(delay time.Duration) (*app, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &app{addr: l.Addr().String(), delay: delay}
	a.reset()
	a.srv = &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second}
	go a.srv.Serve(l)
	return a, nil
}

func (a *app) close() { _ = a.srv.Close() }

func (a *app) url(path string) string { return "http://" + a.addr + path }

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	_, _ = io.Copy(io.Discard, r.Body)
	a.hits.Add(1)
	if r.URL.Path == deliveredPath {
		if seq, err := strconv.ParseInt(r.Header.Get(seqHeader), 10, 64); err == nil {
			a.note(seq, now)
		}
	}
	a.mu.Lock()
	gate := a.gate
	a.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	if a.delay > 0 {
		time.Sleep(a.delay)
	}
	w.WriteHeader(http.StatusOK)
}

// note records the first delivery of seq (later ones are at-least-once
// repeats) and wakes whoever watches for it.
func (a *app) note(seq int64, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, seen := a.arrived[seq]; seen {
		return
	}
	a.arrived[seq] = at
	a.order = append(a.order, at)
	if c, ok := a.watchers[seq]; ok {
		close(c)
		delete(a.watchers, seq)
	}
}

// reset forgets every arrival, between measurements.
func (a *app) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.arrived = map[int64]time.Time{}
	a.order = nil
	a.watchers = map[int64]chan struct{}{}
}

// watch returns a channel closed when seq arrives.
func (a *app) watch(seq int64) <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := make(chan struct{})
	if _, seen := a.arrived[seq]; seen {
		close(c)
		return c
	}
	a.watchers[seq] = c
	return c
}

func (a *app) arrival(seq int64) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.arrived[seq]
	return t, ok
}

func (a *app) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.arrived)
}

func (a *app) arrivals() []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.order...)
}

// waitCount waits until n distinct events have arrived, or timeout.
func (a *app) waitCount(ctx context.Context, n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for a.count() < n {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// hold makes deliveries wait until release: hookinbox's attempts block and
// the rest of its queue stays pending, which is how a backlog is built
// without failing attempts (and so without the retry schedule or the
// circuit breaker getting into the figure).
func (a *app) hold() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gate = make(chan struct{})
}

func (a *app) release() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gate != nil {
		close(a.gate)
		a.gate = nil
	}
}
