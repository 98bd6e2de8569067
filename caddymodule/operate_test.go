package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/hookinbox/hookinbox/internal/store"
)

// Helpers for the tests of operating hookinbox (admin API, command line,
// metrics, events, secrets), on top of pipeline_test.go's.

const adminURL = "http://localhost:2999"

// switchable is a stand-in app whose answer can be changed while it runs.
type switchable struct {
	status atomic.Int64
	calls  atomic.Int64
	srv    *httptest.Server
}

func newSwitchable(t *testing.T, status int) *switchable {
	t.Helper()
	s := &switchable{}
	s.status.Store(int64(status))
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		s.calls.Add(1)
		w.WriteHeader(int(s.status.Load()))
		io.WriteString(w, "answer of the app")
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// admin calls the admin API and decodes its JSON answer into out (if not
// nil). It returns the status and the raw answer.
func admin(t *testing.T, method, path string, out any) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, adminURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, string(raw)
}

// adminOK is admin that fails the test unless the answer is 200.
func adminOK(t *testing.T, method, path string, out any) string {
	t.Helper()
	status, raw := admin(t, method, path, out)
	if status != http.StatusOK {
		t.Fatalf("%s %s = %d %s, want 200", method, path, status, raw)
	}
	return raw
}

// sendDead sends n events and waits until every one of them is dead. The
// app must refuse them (a 4xx, which does not open the circuit breaker).
func sendDead(t *testing.T, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		status, answer := send(t, `{"id":"evt-dead-`+strings.Repeat("x", i+1)+`"}`)
		if status != http.StatusOK {
			t.Fatalf("status = %d (%s)", status, answer)
		}
		ids[i] = eventID(t, answer)
	}
	db := activeStore(t)
	waitFor(t, "every event dead", 10*time.Second, func() bool {
		for _, id := range ids {
			if e, _, err := db.Get(id); err != nil || e.State != store.Dead {
				return false
			}
		}
		return true
	})
	return ids
}

func init() {
	caddy.RegisterModule(eventRecorder{})
}

// eventRecorder is an events handler module for tests: it keeps the events
// it is given in recordedEvents.
type eventRecorder struct{}

func (eventRecorder) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "events.handlers.hookinbox_test_recorder",
		New: func() caddy.Module { return new(eventRecorder) },
	}
}

func (eventRecorder) Handle(_ context.Context, e caddy.Event) error {
	recordedEvents.mu.Lock()
	defer recordedEvents.mu.Unlock()
	recordedEvents.got = append(recordedEvents.got, e)
	return nil
}

// caddyEvents are the Caddy events a test saw.
type caddyEvents struct {
	mu  sync.Mutex
	got []caddy.Event
}

var recordedEvents = new(caddyEvents)

func (c *caddyEvents) named(name string) []caddy.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []caddy.Event
	for _, e := range c.got {
		if e.Name() == name {
			out = append(out, e)
		}
	}
	return out
}

// startCaddyWithEvents runs the Caddyfile config with the events app
// subscribed to names, and returns what it records.
func startCaddyWithEvents(t *testing.T, caddyfile string, names ...string) *caddyEvents {
	t.Helper()
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatalf("adapting the Caddyfile: %v", err)
	}
	var config map[string]any
	if err := json.Unmarshal(adapted, &config); err != nil {
		t.Fatal(err)
	}
	config["apps"].(map[string]any)["events"] = map[string]any{
		"subscriptions": []any{map[string]any{
			"events":   names,
			"handlers": []any{map[string]any{"handler": "hookinbox_test_recorder"}},
		}},
	}
	full, _ := json.Marshal(config)
	recordedEvents.mu.Lock()
	recordedEvents.got = nil
	recordedEvents.mu.Unlock()
	caddytest.NewTester(t).InitServer(string(full), "json")
	t.Cleanup(func() { unloadConfig(t) })
	return recordedEvents
}

func TestOperateEventDeadIsEmitted(t *testing.T) {
	app := newSwitchable(t, http.StatusUnprocessableEntity)
	events := startCaddyWithEvents(t, inboxConfig(t.TempDir(), app.srv.URL, "retry 20ms"), EventDead)

	ids := sendDead(t, 1)
	waitFor(t, "hookinbox.event_dead", 5*time.Second, func() bool { return len(events.named(EventDead)) == 1 })
	e := events.named(EventDead)[0]
	want := map[string]any{"inbox": "test", "id": ids[0], "attempts": 2, "last_outcome": "client_error", "last_status": 422}
	for k, v := range want {
		if e.Data[k] != v {
			t.Errorf("event data %s = %v (%T), want %v", k, e.Data[k], e.Data[k], v)
		}
	}
	if origin := e.Origin(); origin == nil || origin.CaddyModule().ID != "hookinbox" {
		t.Errorf("event origin = %v, want the hookinbox app", origin)
	}
}

func TestOperateBreakerEventsAreEmitted(t *testing.T) {
	app := newSwitchable(t, http.StatusServiceUnavailable)
	events := startCaddyWithEvents(t, inboxConfig(t.TempDir(), app.srv.URL, "retry 10ms 10ms 10ms 10ms 10ms 10ms 10ms 10ms"),
		EventBreakerOpened, EventBreakerClosed)

	// Five failures in a row open the breaker.
	status, answer := send(t, `{"id":"evt-breaker"}`)
	if status != http.StatusOK {
		t.Fatalf("status = %d (%s)", status, answer)
	}
	waitFor(t, "hookinbox.breaker_opened", 5*time.Second, func() bool { return len(events.named(EventBreakerOpened)) == 1 })
	if got := events.named(EventBreakerOpened)[0].Data["inbox"]; got != "test" {
		t.Errorf("breaker_opened inbox = %v, want test", got)
	}
	var inboxes struct {
		Inboxes []inboxView `json:"inboxes"`
	}
	adminOK(t, http.MethodGet, "/hookinbox/inboxes", &inboxes)
	if len(inboxes.Inboxes) != 1 || inboxes.Inboxes[0].Breaker == nil || inboxes.Inboxes[0].Breaker.State != "open" {
		t.Errorf("inboxes = %+v, want the breaker of test open", inboxes.Inboxes)
	}

	// The app comes back: the probe after the cooldown closes it.
	app.status.Store(http.StatusOK)
	waitFor(t, "hookinbox.breaker_closed", 15*time.Second, func() bool { return len(events.named(EventBreakerClosed)) == 1 })
}

// TestOperateRetentionRemovesFinishedEvents checks, through the admin API,
// that delivered and dead events stay in history for the retention and
// leave it after. The store sweeps every tenth of a short retention.
func TestOperateRetentionRemovesFinishedEvents(t *testing.T) {
	app := newSwitchable(t, http.StatusUnprocessableEntity)
	config := strings.Replace(inboxConfig(t.TempDir(), app.srv.URL, "retry 20ms"),
		"hookinbox {", "hookinbox {\n\t\tretention 3s", 1)
	startCaddy(t, config)

	dead := sendDead(t, 1)[0]
	app.status.Store(http.StatusOK)
	status, answer := send(t, `{"id":"evt-kept-then-delivered"}`)
	if status != http.StatusOK {
		t.Fatalf("status = %d (%s)", status, answer)
	}
	delivered := eventID(t, answer)
	waitFor(t, "the delivered event in history", 2*time.Second, func() bool {
		s, _ := admin(t, http.MethodGet, "/hookinbox/events/"+delivered, nil)
		return s == http.StatusOK
	})
	if s, _ := admin(t, http.MethodGet, "/hookinbox/events/"+dead, nil); s != http.StatusOK {
		t.Fatalf("the dead event left history before its retention (status %d)", s)
	}
	waitFor(t, "the events leave history", 10*time.Second, func() bool {
		s1, _ := admin(t, http.MethodGet, "/hookinbox/events/"+dead, nil)
		s2, _ := admin(t, http.MethodGet, "/hookinbox/events/"+delivered, nil)
		return s1 == http.StatusNotFound && s2 == http.StatusNotFound
	})
	var list struct {
		Events []eventView `json:"events"`
	}
	adminOK(t, http.MethodGet, "/hookinbox/events", &list)
	if len(list.Events) != 0 {
		t.Errorf("events still listed after retention: %+v", list.Events)
	}
}

// jsonBody is a compact rendering of v for messages.
func jsonBody(v any) string {
	var b bytes.Buffer
	json.NewEncoder(&b).Encode(v)
	return strings.TrimSpace(b.String())
}
