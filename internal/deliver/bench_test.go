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
)

// BenchmarkDeliver drains b.N stored events of 1 KiB to a no-op application
// through the in-memory queue, at several concurrencies.
func BenchmarkDeliver(b *testing.B) {
	for _, c := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
			}))
			defer srv.Close()
			q := newFakeQueue(b)
			body := make([]byte, 1024)
			header := http.Header{"Content-Type": {"application/json"}, "Stripe-Signature": {"t=1,v1=abc"}}
			for range b.N {
				q.add("in", store.Event{Body: body, Header: header, Verified: "stripe"})
			}
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

// BenchmarkDeliverFromStore is BenchmarkDeliver with the real store (Badger
// in a temporary directory, fsync on) instead of the in-memory queue: the
// difference is what claims and records cost a delivery.
func BenchmarkDeliverFromStore(b *testing.B) {
	for _, c := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
			}))
			defer srv.Close()
			db, err := store.Open(b.TempDir(), store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			body := make([]byte, 1024)
			header := http.Header{"Content-Type": {"application/json"}, "Stripe-Signature": {"t=1,v1=abc"}}
			var wg sync.WaitGroup
			for w := range 64 {
				wg.Go(func() {
					for i := w; i < b.N; i += 64 {
						e := &store.Event{Inbox: "in", Method: http.MethodPost, Body: body, Header: header, Verified: "stripe"}
						if _, _, err := db.Enqueue(context.Background(), e, 0); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			var n atomic.Int64
			done := make(chan struct{})
			s := New(db, nil, Hooks{Delivered: func(string, *store.Event) {
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
