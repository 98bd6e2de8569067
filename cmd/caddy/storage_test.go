package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory, or skips the
// test when this process may not mount (not root, or in a container that
// forbids it).
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a small tmpfs to play the full disk (needs root and mount permission): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

func freeSpace(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// TestFullDiskAnswers503AndRecovers lets the ingest fill a small device:
// every request is answered 200 only for a stored event and 503 with
// Retry-After otherwise, the server survives, and ingest resumes by itself
// once space is freed.
func TestFullDiskAnswers503AndRecovers(t *testing.T) {
	bin := caddyBinary(t)
	const (
		device   = 256 << 20
		headroom = 180 << 20 // left free when the test starts sending; the reserve is 128 MiB
		bodySize = 256 << 10
	)
	data := mountTmpfs(t, device)
	dir := t.TempDir()
	stand := newRecorder()
	app := newAppServer(t, stand)
	addr, adminAddr := freePort(t), freePort(t)
	config := writeConfig(t, dir, fmt.Sprintf(`{
	admin %s
	hookinbox {
		storage %s
	}
}
http://%s {
	hookinbox full {
		forward %s
		max_body 1MiB
		retry 200ms 200ms 200ms 200ms 200ms
	}
}
`, adminAddr, data, addr, app.url("/full")))
	srv := startServer(t, bin, config, addr, logFile(t, dir))
	defer srv.kill()
	admin := adminClient{t, adminAddr}

	// The filler leaves headroom; the ingest eats into it.
	filler := filepath.Join(data, "filler")
	if n := freeSpace(t, data) - headroom; n > 0 {
		if err := os.WriteFile(filler, make([]byte, n), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	s := newSender("http://" + addr + "/")
	var accepted []string // bodies answered 200
	var ids []string
	refused := 0
	body := func(i int) string {
		return fmt.Sprintf("%06d%s", i, strings.Repeat("x", bodySize-6))
	}
	i := 0
	for ; i < 2*headroom/bodySize && refused < 20; i++ {
		a, err := s.send(body(i))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		switch a.status {
		case http.StatusOK:
			accepted = append(accepted, body(i))
			ids = append(ids, a.eventID())
		case http.StatusServiceUnavailable:
			refused++
			if a.header.Get("Retry-After") == "" {
				t.Errorf("request %d: 503 without Retry-After", i)
			}
			if !strings.Contains(string(a.body), `"storage_full"`) {
				t.Errorf("request %d: 503 %s, want the reason storage_full", i, a.body)
			}
		default:
			t.Fatalf("request %d: status %d %s, want 200 or 503", i, a.status, a.body)
		}
	}
	t.Logf("device full after %d requests: %d accepted, %d refused, %d MiB free",
		i, len(accepted), refused, freeSpace(t, data)>>20)
	if refused == 0 {
		t.Fatalf("%d requests of %d KiB never filled the device", i, bodySize>>10)
	}
	if !srv.alive() {
		t.Fatalf("the server died when the device filled up: %v", srv.err)
	}
	// A 200 means stored: every acknowledged event is in the store.
	for _, id := range ids {
		if id == "" {
			t.Fatal("a 200 without an event id")
		}
		if _, err := admin.do(http.MethodGet, "/hookinbox/events/"+id, "", nil, nil); err != nil {
			t.Fatalf("acknowledged event not stored: %v", err)
		}
	}

	// Free the space: ingest resumes in the same process.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ingest to resume once space is freed", 20*time.Second, func() bool {
		a, err := s.send(body(i))
		if err == nil && a.status == http.StatusOK {
			accepted = append(accepted, body(i))
		}
		i++
		return err == nil && a.status == http.StatusOK
	})
	waitFor(t, "every acknowledged event to be delivered", 60*time.Second, func() bool {
		return len(stand.missing(accepted)) == 0
	})
	if !srv.alive() {
		t.Fatalf("the server died: %v", srv.err)
	}
}

// TestMaxPendingAnswers503 fills an inbox whose app is down up to
// max_pending: the next request gets 503 with Retry-After and is not stored.
func TestMaxPendingAnswers503(t *testing.T) {
	bin := caddyBinary(t)
	dir := t.TempDir()
	addr, adminAddr := freePort(t), freePort(t)
	const maxPending = 5
	config := writeConfig(t, dir, fmt.Sprintf(`{
	admin %s
	hookinbox {
		storage %s
	}
}
http://%s {
	hookinbox capped {
		forward http://%s/
		retry 1h
		max_pending %d
	}
}
`, adminAddr, filepath.Join(dir, "data"), addr, freePort(t), maxPending))
	srv := startServer(t, bin, config, addr, logFile(t, dir))
	defer srv.kill()
	admin := adminClient{t, adminAddr}

	s := newSender("http://" + addr + "/")
	for i := range maxPending {
		a, err := s.send(fmt.Sprintf(`{"n":%d}`, i))
		if err != nil || a.status != http.StatusOK {
			t.Fatalf("request %d of %d: %v %d %s, want 200", i+1, maxPending, err, a.status, a.body)
		}
	}
	for i := range 3 {
		a, err := s.send(`{"n":"over"}`)
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
			t.Fatalf("request %d beyond max_pending: %d (Retry-After %q), want 503 with Retry-After",
				i+1, a.status, a.header.Get("Retry-After"))
		}
	}
	in := admin.inbox("capped")
	if n := in.Counts["pending"] + in.Counts["delivering"]; n != maxPending {
		t.Errorf("inbox holds %d events waiting, want %d: a refused request was stored", n, maxPending)
	}
}
