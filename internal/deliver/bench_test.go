package deliver

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookinbox/hookinbox/internal/store"
	"github.com/hookinbox/hookinbox/internal/webhooktest"
)

// benchBody and benchHeader are the events the delivery benchmarks drain.
var (
	benchBody   = make([]byte, 1024)
	benchHeader = http.Header{"Content-Type": {"application/json"}, "Stripe-Signature": {"t=1,v1=abc"}}
)

// BenchmarkDeliver drains b.N stored events of 1 KiB to a no-op application
// through the in-memory queue, at several concurrencies.
func BenchmarkDeliver(b *testing.B) {
	benchDrain(b, func(b *testing.B) Queue {
		q := newFakeQueue(b)
		for range b.N {
			q.add("in", store.Event{Body: benchBody, Header: benchHeader, Verified: "stripe"})
		}
		return q
	})
}

// BenchmarkDeliverFromStore is BenchmarkDeliver with the real store (Badger
// in a temporary directory, fsync on) instead of the in-memory queue: the
// difference is what claims and records cost a delivery.
func BenchmarkDeliverFromStore(b *testing.B) {
	benchDrain(b, func(b *testing.B) Queue {
		db, err := store.Open(b.TempDir(), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		var wg sync.WaitGroup
		for w := range 64 {
			wg.Go(func() {
				for i := w; i < b.N; i += 64 {
					e := &store.Event{Inbox: "in", Method: http.MethodPost, Body: benchBody, Header: benchHeader, Verified: "stripe"}
					if _, _, err := db.Enqueue(context.Background(), e, store.Limits{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return db
	})
}

// benchDrain times the delivery of the b.N events of inbox "in" that fill
// returns a queue holding, to a no-op application, at several concurrencies.
func benchDrain(b *testing.B, fill func(b *testing.B) Queue) {
	for _, c := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
			}))
			defer srv.Close()
			q := fill(b)
			var n atomic.Int64
			done := make(chan struct{})
			s := New(q, nil, Hooks{Delivered: func(string, *store.Event) {
				if n.Add(1) == int64(b.N) {
					close(done)
				}
			}})
			b.ReportAllocs()
			b.ResetTimer()
			s.Configure([]Inbox{{Name: "in", Forward: srv.URL, Concurrency: c}})
			<-done
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s.Stop(ctx)
		})
	}
}

// BenchmarkNewRequest builds the request of an attempt at an event with the
// headers a signed webhook typically arrives with, as the server kept them.
func BenchmarkNewRequest(b *testing.B) {
	set, err := newSettings(Inbox{Name: "in", Forward: "http://127.0.0.1:8080/hook"})
	if err != nil {
		b.Fatal(err)
	}
	e := &store.Event{
		ID:         "01JC8ZJ4Q5W7K3M9X2V6T0R1YS",
		Body:       benchBody,
		Header:     webhooktest.Header(),
		Verified:   "stripe",
		ReceivedAt: time.Date(2026, 11, 3, 17, 5, 6, 0, time.UTC),
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := newRequest(ctx, set, e, 1); err != nil {
			b.Fatal(err)
		}
	}
}
