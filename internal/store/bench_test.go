package store

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/hookinbox/hookinbox/internal/webhooktest"
)

// BenchmarkEnqueueParallel measures durable enqueues from about 64
// concurrent callers (the handler's shape under load), 1 KiB bodies.
func BenchmarkEnqueueParallel(b *testing.B) {
	db, _ := openTest(b)
	body := make([]byte, 1024)
	b.SetParallelism(max(64/runtime.GOMAXPROCS(0), 1))
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := &Event{Inbox: "bench", Method: "POST", Path: "/hooks/bench", Body: body}
			if _, _, err := db.Enqueue(context.Background(), e, Limits{Dedupe: time.Hour}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkClaimRecord measures one delivery's bookkeeping: claim the due
// event and record it delivered, from a backlog.
func BenchmarkClaimRecord(b *testing.B) {
	db, _ := openTest(b)
	body := make([]byte, 1024)
	for range b.N {
		if _, _, err := db.Enqueue(context.Background(), &Event{Inbox: "bench", Body: body}, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		e, _, err := db.Claim("bench", time.Now(), false)
		if err != nil || e == nil {
			b.Fatalf("Claim = %v, %v", e, err)
		}
		if _, err := db.Record(e.ID, Attempt{At: time.Now(), Outcome: OutcomeOK, Status: 200}, Next{Delivered: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeRequest reads back the request of an event with the
// headers a signed webhook typically arrives with and a 1 KiB body, as
// every delivery does.
func BenchmarkDecodeRequest(b *testing.B) {
	v := encodeRequest(nil, &Event{
		Header: webhooktest.Header(),
		Body:   make([]byte, 1024),
	})
	b.ReportAllocs()
	for b.Loop() {
		var e Event
		if err := decodeRequest(v, &e); err != nil {
			b.Fatal(err)
		}
	}
}
