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

// hotmartSender sends Hotmart events to a handler, numbered from seq. Its
// request, replacer and writer are reused: they are Caddy's and net/http's,
// so an allocation count of send is the handler's, verify's and the store's.
type hotmartSender struct {
	h      *Handler
	seq    *atomic.Int64
	body   []byte
	reader *bytes.Reader
	req    *http.Request
	w      *discardWriter
	digits []byte
}

func newHotmartSender(tb testing.TB, h *Handler, seq *atomic.Int64) *hotmartSender {
	s := &hotmartSender{h: h, seq: seq, body: bytes.Clone(benchHotmartBody), w: &discardWriter{header: make(http.Header)}}
	s.reader = bytes.NewReader(s.body)
	req, err := http.NewRequest(http.MethodPost, "http://example.com/hooks/bench", readCloser{s.reader})
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hotmart-Hottok", "tok")
	req.ContentLength = int64(len(s.body))
	s.req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	return s
}

// send sends the next event and fails tb unless it is accepted.
func (s *hotmartSender) send(tb testing.TB) {
	s.digits = strconv.AppendInt(s.digits[:0], s.seq.Add(1), 10)
	copy(s.body[benchSeqAt+benchSeqDigits-len(s.digits):], s.digits)
	s.reader.Reset(s.body)
	if err := s.h.ServeHTTP(s.w, s.req, nil); err != nil || s.w.status != http.StatusOK {
		tb.Fatalf("ServeHTTP: status %d, error %v", s.w.status, err)
	}
}

// discardWriter is a ResponseWriter that keeps nothing, so that counts are
// the handler's allocations rather than a recorder's. It writes strings as
// net/http's does, without a copy.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header               { return w.header }
func (w *discardWriter) Write(b []byte) (int, error)       { return len(b), nil }
func (w *discardWriter) WriteString(s string) (int, error) { return len(s), nil }
func (w *discardWriter) WriteHeader(status int)            { w.status = status }

// readCloser is a request body that can be read again after a Reset.
type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// BenchmarkIngest measures the handler on the load hookbench sends: 1 KiB
// Hotmart bodies with their hottok, deduped on the body's id, from about
// 64 concurrent requests, each answered once its event is synced.
func BenchmarkIngest(b *testing.B) {
	h, _ := newIngestHandler(b)
	h.DedupeKey = nil // Hotmart's own: the body's id
	var seq atomic.Int64
	b.SetParallelism(max(64/runtime.GOMAXPROCS(0), 1))
	b.SetBytes(int64(len(benchHotmartBody)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		s := newHotmartSender(b, h, &seq)
		for pb.Next() {
			s.send(b)
		}
	})
}

// TestIngestAllocations bounds what one accepted event allocates, from the
// handler to its commit (each alone, so with a commit of its own); the
// garbage collector's work grows with it. 131 when the bound was set,
// 150 before the body buffers were pooled and the store's keys, done
// channels and batch maps cut.
func TestIngestAllocations(t *testing.T) {
	const most = 140
	h, _ := newIngestHandler(t)
	h.DedupeKey = nil
	var seq atomic.Int64
	s := newHotmartSender(t, h, &seq)
	// The fewest of three rounds: Badger's and the store's background
	// goroutines allocate too, now and then.
	fewest := float64(-1)
	for range 3 {
		n := testing.AllocsPerRun(100, func() { s.send(t) })
		if fewest < 0 || n < fewest {
			fewest = n
		}
	}
	t.Logf("%.0f allocations per accepted event", fewest)
	if fewest > most {
		t.Errorf("an accepted event costs %.0f allocations, want at most %d", fewest, most)
	}
}
