package deliver

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/hookinbox/hookinbox/internal/store"
)

// received is one request as the test backend saw it.
type received struct {
	at     time.Time
	method string
	uri    string
	host   string
	header http.Header
	body   []byte
}

// backend is an application under test: it records every request and
// counts the requests in flight.
type backend struct {
	*httptest.Server
	handler func(w http.ResponseWriter, r *http.Request, n int)

	mu       sync.Mutex
	requests []received

	inFlight    atomic.Int64
	maxInFlight atomic.Int64
}

// newBackend starts a backend that answers with handler; n counts the
// requests from 1. A nil handler answers 200 "ok".
func newBackend(t *testing.T, handler func(w http.ResponseWriter, r *http.Request, n int)) *backend {
	t.Helper()
	b := &backend{handler: handler}
	b.Server = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	cur := b.inFlight.Add(1)
	defer b.inFlight.Add(-1)
	for {
		m := b.maxInFlight.Load()
		if cur <= m || b.maxInFlight.CompareAndSwap(m, cur) {
			break
		}
	}
	b.mu.Lock()
	b.requests = append(b.requests, received{
		at: time.Now(), method: r.Method, uri: r.RequestURI, host: r.Host,
		header: r.Header.Clone(), body: body,
	})
	n := len(b.requests)
	b.mu.Unlock()
	if b.handler == nil {
		io.WriteString(w, "ok")
		return
	}
	b.handler(w, r, n)
}

func (b *backend) got() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.requests...)
}

func (b *backend) hits() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.requests)
}

// recorder collects the hooks' calls.
type recorder struct {
	mu        sync.Mutex
	attempts  []store.Attempt
	delivered []string
	dead      []string
	breaker   []bool
	onBreaker func(open bool)
}

func (r *recorder) hooks() Hooks {
	return Hooks{
		Attempt: func(_ string, _ *store.Event, a store.Attempt) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.attempts = append(r.attempts, a)
		},
		Delivered: func(_ string, e *store.Event) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.delivered = append(r.delivered, e.ID)
		},
		Dead: func(_ string, e *store.Event) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.dead = append(r.dead, e.ID)
		},
		Breaker: func(_ string, open bool) {
			r.mu.Lock()
			r.breaker = append(r.breaker, open)
			f := r.onBreaker
			r.mu.Unlock()
			if f != nil {
				f(open)
			}
		},
	}
}

func (r *recorder) snapshot() recorder {
	r.mu.Lock()
	defer r.mu.Unlock()
	return recorder{
		attempts:  append([]store.Attempt(nil), r.attempts...),
		delivered: append([]string(nil), r.delivered...),
		dead:      append([]string(nil), r.dead...),
		breaker:   append([]bool(nil), r.breaker...),
	}
}

// newService returns a Service over q that is stopped when the test ends.
func newService(t *testing.T, q Queue, hooks Hooks) *Service {
	t.Helper()
	s := New(q, zap.NewNop(), hooks)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Stop(ctx)
	})
	return s
}

// slowMachine stretches waitFor's deadlines.
const slowMachine = 5

// waitFor polls cond until it holds, or fails once slowMachine times d has
// passed.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	// d is ample on an idle machine; two shared cores busy with other
	// packages' tests under -race took longer (TestOrderedHoldsTheLine
	// timed out once at 3 s). A passing test does not wait for it.
	d *= slowMachine
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// retries returns n waits of d.
func retries(n int, d time.Duration) []time.Duration {
	r := make([]time.Duration, n)
	for i := range r {
		r[i] = d
	}
	return r
}

// quietLog silences a test server's own error log (TLS handshake errors
// are the point of some tests).
func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }
