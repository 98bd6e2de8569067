package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The crash harness runs the real binary, sends it webhooks from several
// concurrent senders, kills it with SIGKILL at random moments, restarts it,
// and at the end checks that every event that was answered 200 reached the
// app at least once. HOOKINBOX_CRASH_CYCLES sets how many kills (default 3
// in `go test`, so CI runs the short form).

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
	cmd  *exec.Cmd
	addr string
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
	s := &server{cmd: cmd, addr: addr}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return s
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
	_ = s.cmd.Wait()
}

// app is the stand-in application: it counts deliveries per event.
type app struct {
	mu    sync.Mutex
	seen  map[string]int
	total atomic.Int64
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.seen[string(body)]++
	a.mu.Unlock()
	a.total.Add(1)
	// A little latency so some deliveries are in flight at each kill.
	time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
}

func (a *app) delivered(body string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[body] > 0
}

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

	stand := &app{seen: map[string]int{}}
	backend := httptest.NewServer(stand)
	defer backend.Close()

	dir := t.TempDir()
	addr := freePort(t)
	config := filepath.Join(dir, "Caddyfile")
	err := os.WriteFile(config, []byte(fmt.Sprintf(`{
	admin off
	hookinbox {
		storage %s
	}
}
http://%s {
	hookinbox crash {
		verify hotmart crash-hottok
		forward %s
		concurrency 8
		retry 100ms 100ms 100ms 100ms 100ms 100ms 100ms 100ms 100ms 100ms
	}
}
`, filepath.Join(dir, "data"), addr, backend.URL)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	logs, err := os.Create(filepath.Join(dir, "caddy.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	var acked sync.Map
	var ackedCount, sent atomic.Int64
	var seq atomic.Int64
	sendOne := func() {
		body := fmt.Sprintf(`{"id":"evt-%d"}`, seq.Add(1))
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
			acked.Store(body, true)
			ackedCount.Add(1)
		}
	}

	for cycle := range cycles {
		srv := startServer(t, bin, config, addr, logs)
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(200+rand.IntN(600))*time.Millisecond)
		var senders sync.WaitGroup
		for range 6 {
			senders.Add(1)
			go func() {
				defer senders.Done()
				for ctx.Err() == nil {
					sendOne()
				}
			}()
		}
		<-ctx.Done()
		// Kill while the senders are still mid-request.
		srv.kill()
		cancel()
		senders.Wait()
		t.Logf("cycle %d: %d acknowledged so far", cycle+1, ackedCount.Load())
	}

	// Last start: no more kills; everything acknowledged must arrive.
	srv := startServer(t, bin, config, addr, logs)
	defer srv.kill()
	deadline := time.Now().Add(60 * time.Second)
	var lost []string
	for {
		lost = lost[:0]
		acked.Range(func(body, _ any) bool {
			if !stand.delivered(body.(string)) {
				lost = append(lost, body.(string))
			}
			return true
		})
		if len(lost) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	duplicates := stand.total.Load() - int64(len(stand.seen))
	t.Logf("crash harness: cycles=%d sent=%d acknowledged=%d delivered=%d lost=%d duplicates=%d",
		cycles, sent.Load(), ackedCount.Load(), len(stand.seen), len(lost), duplicates)
	if ackedCount.Load() == 0 {
		t.Fatal("no request was acknowledged: the harness tested nothing")
	}
	if len(lost) > 0 {
		t.Fatalf("%d acknowledged events were never delivered, e.g. %s", len(lost), lost[0])
	}
}
