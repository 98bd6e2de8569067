package caddymodule

import (
	"bytes"
	"context"
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// benchHotmartBody is a 1 KiB Hotmart webhook 2.0 body, as hookbench sends;
// its id ends in benchSeqDigits digits that each request overwrites, so
// that no request is a duplicate.
var benchHotmartBody = func() []byte {
	head := `{"id":"bench-000000000000","creation_date":1764633600000,"event":"PURCHASE_APPROVED","version":"2.0.0","data":{"product":{"id":0,"name":"hookbench product"},` +
		`"buyer":{"email":"buyer@example.com","name":"Test Buyer"},"purchase":{"transaction":"HP1764633600","status":"APPROVED",` +
		`"price":{"value":97.0,"currency_value":"BRL"},"description":"`
	tail := `"}}}`
	return []byte(head + string(bytes.Repeat([]byte("x"), 1024-len(head)-len(tail))) + tail)
}()

const (
	benchSeqAt     = len(`{"id":"bench-`)
	benchSeqDigits = 12
)

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// counts the handler's allocations rather than a recorder's.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }

// BenchmarkIngest measures the handler on the load hookbench sends: 1 KiB
// Hotmart bodies with their hottok, deduped on the body's id, from about
// 64 concurrent requests, each answered once its event is synced. The
// request, its replacer and its writer are reused: they are Caddy's and
// net/http's, not the handler's.
func BenchmarkIngest(b *testing.B) {
	h, _ := newIngestHandler(b)
	h.DedupeKey = nil // Hotmart's own: the body's id
	var seq atomic.Int64
	b.SetParallelism(max(64/runtime.GOMAXPROCS(0), 1))
	b.SetBytes(int64(len(benchHotmartBody)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		body := bytes.Clone(benchHotmartBody)
		reader := bytes.NewReader(body)
		req, err := http.NewRequest(http.MethodPost, "http://example.com/hooks/bench", readCloser{reader})
		if err != nil {
			b.Error(err)
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Hotmart-Hottok", "tok")
		req.ContentLength = int64(len(body))
		repl := caddy.NewReplacer()
		req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl))
		w := &discardWriter{header: make(http.Header)}
		var digits []byte
		for pb.Next() {
			digits = strconv.AppendInt(digits[:0], seq.Add(1), 10)
			copy(body[benchSeqAt+benchSeqDigits-len(digits):], digits)
			reader.Reset(body)
			if err := h.ServeHTTP(w, req, nil); err != nil || w.status != http.StatusOK {
				b.Errorf("ServeHTTP: status %d, error %v", w.status, err)
				return
			}
		}
	})
}

// readCloser is a request body that can be read again after a Reset.
type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }
