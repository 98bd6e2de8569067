package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestExampleCaddyfile runs the README's first command as a newcomer would
// (the real binary, Caddyfile.example as it is, HOTMART_HOTTOK unset) and
// sends the README's curl: the stand-in app must log the event with the
// headers hookinbox adds, and a wrong hottok must be refused.
func TestExampleCaddyfile(t *testing.T) {
	bin := caddyBinary(t)
	dir := t.TempDir()
	example, err := os.ReadFile(filepath.Join("..", "..", "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(config, example, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOTMART_HOTTOK", "")
	logs := new(syncBuffer)
	srv := startServer(t, bin, config, "127.0.0.1:8080", logs)
	defer srv.kill()

	post := func(hottok string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:8080/hooks/hotmart",
			strings.NewReader(`{"id":"evt-1","event":"PURCHASE_APPROVED"}`))
		req.Header.Set("X-HOTMART-HOTTOK", hottok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	if status, body := post("not-the-hottok"); status != http.StatusUnauthorized {
		t.Errorf("wrong hottok: %d %s, want 401", status, body)
	}
	status, body := post("dev-hottok")
	if status != http.StatusOK || !strings.HasPrefix(body, `{"id":"`) {
		t.Fatalf("right hottok: %d %s, want 200 {\"id\":…}", status, body)
	}
	id := strings.TrimSuffix(strings.TrimPrefix(body, `{"id":"`), `"}`)

	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), id) {
		if time.Now().After(deadline) {
			t.Fatalf("the stand-in app never logged event %s; output:\n%s", id, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var line string
	for l := range strings.SplitSeq(logs.String(), "\n") {
		if strings.Contains(l, "handled request") && strings.Contains(l, id) {
			line = l
		}
	}
	for _, want := range []string{`"Hookinbox-Attempt": ["1"]`, `"Hookinbox-Verified": ["hotmart"]`, `Hookinbox-Received-At`, `PURCHASE_APPROVED`} {
		if !strings.Contains(line, want) {
			t.Errorf("the app's log line lacks %s:\n%s", want, line)
		}
	}
	if strings.Contains(logs.String(), "dev-hottok") {
		t.Error("the hottok appears in the server's output")
	}
	if _, err := os.Stat(filepath.Join(dir, "hookinbox-data")); err != nil {
		t.Errorf("events are not stored in ./hookinbox-data: %v", err)
	}

	// The dashboard, as a newcomer opens it, shows the event.
	resp, err := http.Get("http://localhost:2020/events")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), id) {
		t.Errorf("the dashboard's events page: %d, event %s shown: %v", resp.StatusCode, id, strings.Contains(string(page), id))
	}
	if strings.Contains(string(page), "dev-hottok") {
		t.Error("the dashboard shows the hottok")
	}
}
