package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/hookinbox/hookinbox/internal/store"
	"github.com/hookinbox/hookinbox/internal/throttle"
	"github.com/hookinbox/hookinbox/internal/verify"
)

// newIngestHandler is a Handler set up as Provision would, on a real store
// in a temporary directory, without a Caddy config around it (Provision
// needs one to find the app).
func newIngestHandler(tb testing.TB) (*Handler, *store.DB) {
	tb.Helper()
	db, err := store.Open(tb.TempDir(), store.Options{MemTableSize: 4 << 20, BlockCacheSize: 1 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	e := &engine{opened: make(chan struct{})}
	e.db.Store(&openStore{db})
	h := &Handler{
		Inbox:       "fuzz",
		Forward:     "http://127.0.0.1:1/",
		MaxBody:     4096,
		Methods:     []string{http.MethodPost, http.MethodPut},
		Dedupe:      caddy.Duration(defaultDedupe),
		DedupeKey:   &DedupeKey{JSON: "data.id"},
		logger:      zap.NewNop(),
		storeErrors: throttle.New(logEvery),
		app: &App{
			engine:  e,
			metrics: newMetrics(prometheus.NewRegistry()),
		},
	}
	h.countInto(h.app.metrics)
	for _, s := range []*Scheme{
		{name: "hotmart", Config: verify.Config{Secrets: []string{"tok"}}},
		{name: "token", Config: verify.Config{Header: "X-Token", Secrets: []string{"secret"}}},
	} {
		if err := s.build(zap.NewNop()); err != nil {
			tb.Fatal(err)
		}
		h.verifiers = append(h.verifiers, s)
		h.schemes = append(h.schemes, s.name)
	}
	return h, db
}

// ingestStatuses are the answers the handler may give (SPEC: answers to
// the sender).
var ingestStatuses = map[int]bool{200: true, 400: true, 401: true, 405: true, 413: true, 503: true}

// FuzzIngest drives the handler with arbitrary methods, headers and bodies:
// it must never panic, answer only with a status of the contract, and
// answer 200 only for an event that is stored, byte for byte.
func FuzzIngest(f *testing.F) {
	f.Add("POST", "X-Hotmart-Hottok: tok\nContent-Type: application/json", []byte(`{"id":"e1","data":{"id":"d1"}}`), int64(-2))
	f.Add("POST", "X-Token: secret", []byte("\xff\xfe not utf-8"), int64(-1))
	f.Add("PUT", "X-Token: secret\nX-Token: other", []byte(`{"data":{"id":{"nested":true}}}`), int64(5))
	f.Add("POST", "X-Hotmart-Hottok: wrong", []byte(`{}`), int64(-2))
	f.Add("GET", "", []byte(nil), int64(0))
	f.Add("POST", "X-Hotmart-Hottok: tok\nHookinbox-Id: forged", bytes.Repeat([]byte("a"), 5000), int64(-2))
	f.Add("POST", "X-Token: secret", []byte(`{"data":`), int64(1<<40))
	h, db := newIngestHandler(f)
	f.Fuzz(func(t *testing.T, method, header string, body []byte, declared int64) {
		req, err := http.NewRequest(method, "http://example.com/hooks", bytes.NewReader(body))
		if err != nil {
			return // not a request a server could receive
		}
		for line := range strings.SplitSeq(header, "\n") {
			name, value, _ := strings.Cut(line, ":")
			req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
		}
		if declared >= -1 {
			req.ContentLength = declared
		}
		repl := caddy.NewReplacer()
		req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl))
		before := db.Pending("fuzz")
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, req, nil); err != nil {
			t.Fatalf("ServeHTTP returned %v", err)
		}
		if !ingestStatuses[w.Code] {
			t.Fatalf("status %d is not one of the contract's", w.Code)
		}
		if w.Code != http.StatusOK {
			if after := db.Pending("fuzz"); after > before {
				t.Fatalf("status %d, yet the inbox went from %d to %d pending events", w.Code, before, after)
			}
			return
		}
		var answer struct{ ID string }
		if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil || answer.ID == "" {
			t.Fatalf("200 without an event id: %q", w.Body)
		}
		e, _, err := db.Get(answer.ID)
		if err != nil {
			t.Fatalf("200 for event %s, which is not stored: %v", answer.ID, err)
		}
		if e.Header.Get("Hookinbox-Id") != "" {
			t.Fatal("a sender's Hookinbox-Id header was stored")
		}
		if repl.ReplaceAll("{http.hookinbox.event_id}", "") != answer.ID {
			t.Fatal("the event_id placeholder does not match the answer")
		}
	})
}
