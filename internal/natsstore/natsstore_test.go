package natsstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookinbox/hookinbox/internal/natsstore"
	"github.com/hookinbox/hookinbox/internal/natstest"
	"github.com/hookinbox/hookinbox/internal/store"
	"github.com/hookinbox/hookinbox/internal/storetest"
)

func connect(t testing.TB, servers ...*server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(natstest.URLs(servers...), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

var prefixes atomic.Int64

// opener opens a store under a prefix of its own on nc for each case.
func opener(nc *nats.Conn, replicas int) storetest.Opener {
	return func(t *testing.T) (store.Store, *store.Faults) {
		f := new(store.Faults)
		s, err := natsstore.Open(context.Background(), nc, natsstore.Options{
			Prefix:    fmt.Sprintf("t%d", prefixes.Add(1)),
			Replicas:  replicas,
			Retention: time.Hour,
			LeaseTTL:  3 * time.Second,
			Faults:    f,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, f
	}
}

// The NATS store's row of the stores' conformance suite, on one server.
func TestConformanceSingle(t *testing.T) {
	nc := connect(t, natstest.Server(t, nil))
	storetest.Run(t, opener(nc, 1))
}

// The same on a three-server cluster, everything stored R3.
func TestConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	nc := connect(t, natstest.Cluster(t, 3)...)
	storetest.Run(t, opener(nc, 3))
}

// Without NATS, Enqueue fails within the store's timeout: never a 200.
func TestEnqueueWithoutNATSFails(t *testing.T) {
	srv := natstest.Server(t, nil)
	nc := connect(t, srv)
	s, err := natsstore.Open(context.Background(), nc, natsstore.Options{Prefix: "down", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv.Shutdown()
	srv.WaitForShutdown()
	start := time.Now()
	_, _, err = s.Enqueue(context.Background(), &store.Event{Inbox: "in", Body: []byte("x")}, store.Limits{})
	if err == nil {
		t.Fatal("Enqueue succeeded with the server down")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Enqueue failed after %s, want within about its 1s timeout", d)
	}
}

// Every event acknowledged while the events stream's leader (requests and
// states) is killed mid-load is leased afterwards.
func TestStreamLeaderKilledMidLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	servers := natstest.Cluster(t, 3)
	nc := connect(t, servers...)
	s, err := natsstore.Open(context.Background(), nc, natsstore.Options{
		Prefix: "kill", Replicas: 3, LeaseTTL: 3 * time.Second, Timeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var acked sync.Map
	var failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id, _, err := s.Enqueue(context.Background(), &store.Event{Inbox: "in", Body: fmt.Appendf(nil, "%d-%d", w, i)}, store.Limits{})
				if err != nil {
					failed.Add(1)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				acked.Store(id, true)
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	// One kill in CI; HOOKINBOX_NATS_KILLS=N kills the leader N times, the
	// killed server restarted between kills.
	kills := 1
	if n, err := strconv.Atoi(os.Getenv("HOOKINBOX_NATS_KILLS")); err == nil && n > 0 {
		kills = n
	}
	for k := range kills {
		var leader *server.Server
		deadline := time.Now().Add(10 * time.Second)
		for leader == nil && time.Now().Before(deadline) {
			for _, srv := range servers {
				if srv.Running() && srv.JetStreamIsStreamLeader("$G", "KV_KILL_EVENTS") {
					leader = srv
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		if leader == nil {
			t.Fatalf("kill %d: no leader of the events stream", k+1)
		}
		leader.Shutdown()
		leader.WaitForShutdown()
		time.Sleep(1500 * time.Millisecond)
		if k < kills-1 {
			i := slices.Index(servers, leader)
			servers[i] = natstest.Restart(t, leader)
			time.Sleep(time.Second)
		}
	}
	close(stop)
	wg.Wait()

	want := 0
	acked.Range(func(_, _ any) bool { want++; return true })
	if want == 0 {
		t.Fatal("no event was acknowledged")
	}
	leased := map[string]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for len(leased) < want && time.Now().Before(deadline) {
		id, _, err := s.Lease("in", time.Now(), false)
		if err != nil || id == "" {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		leased[id] = true
		if _, err := s.Record(id, store.Attempt{At: time.Now(), Outcome: store.OutcomeOK}, store.Next{Delivered: true}); err != nil {
			t.Logf("record %s: %v", id, err)
		}
	}
	lost := 0
	acked.Range(func(id, _ any) bool {
		if !leased[id.(string)] {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged event %s was never leased", id)
			}
		}
		return true
	})
	t.Logf("%d events acknowledged, %d enqueues refused during the failover, %d lost", want, failed.Load(), lost)
}

// A retry is a message schedule that JetStream fires by itself: once its
// time has passed, the schedule is gone and the event's due message is
// there, with no Lease having pulled it forward.
func TestRetryScheduleFires(t *testing.T) {
	nc := connect(t, natstest.Server(t, nil))
	s, err := natsstore.Open(context.Background(), nc, natsstore.Options{Prefix: "sched"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id, _, err := s.Enqueue(context.Background(), &store.Event{Inbox: "in"}, store.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := s.Lease("in", time.Now(), false); err != nil || got != id {
		t.Fatalf("lease = %q, %v", got, err)
	}
	retryAt := time.Now().Add(1500 * time.Millisecond)
	if _, err := s.Record(id, store.Attempt{At: time.Now(), Outcome: store.OutcomeServerError}, store.Next{RetryAt: retryAt}); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	subjects := func() map[string]uint64 {
		st, err := js.Stream(context.Background(), "SCHED_DUE")
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(">"))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Subjects
	}
	before := subjects()
	if len(before) != 1 || before["sched.due.in"] != 0 {
		t.Fatalf("before the retry: subjects %v, want the schedule only", before)
	}
	time.Sleep(time.Until(retryAt) + 1500*time.Millisecond)
	after := subjects()
	if len(after) != 1 || after["sched.due.in"] != 1 {
		t.Fatalf("after the retry's time: subjects %v, want one due message only", after)
	}
	if got, _, err := s.Lease("in", time.Now(), false); err != nil || got != id {
		t.Fatalf("lease after the schedule fired = %q, %v; want %s", got, err, id)
	}
}

// Every server of the cluster down, then up again on its disk: Enqueue
// fails meanwhile, within its timeout, never succeeds; once the cluster is
// back it works again by itself, and every event acknowledged before is
// still there.
func TestAllServersDownThenUp(t *testing.T) {
	servers := natstest.Cluster(t, 3)
	nc := connect(t, servers...)
	s, err := natsstore.Open(context.Background(), nc, natsstore.Options{
		Prefix: "outage", Replicas: 3, LeaseTTL: 3 * time.Second, Timeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	enqueue := func(body string) (string, error) {
		id, _, err := s.Enqueue(context.Background(), &store.Event{Inbox: "in", Body: []byte(body)}, store.Limits{})
		return id, err
	}
	var before []string
	for i := range 5 {
		id, err := enqueue(fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, id)
	}

	for _, srv := range servers {
		srv.Shutdown()
	}
	start := time.Now()
	if _, err := enqueue("during"); err == nil {
		t.Fatal("Enqueue succeeded with every server down")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Enqueue took %s to fail, want about its 1s timeout", took)
	}

	for i, srv := range servers {
		servers[i] = natstest.Restart(t, srv)
	}
	deadline := time.Now().Add(60 * time.Second)
	var after string
	for {
		if after, err = enqueue("after"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Enqueue still failing a minute after the cluster came back: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, id := range append(before, after) {
		if e, _, err := s.Get(id); err != nil || e.State != store.Pending {
			t.Errorf("event %s after the outage: %v", id, err)
		}
	}
}

// The leader of an inbox's consumer killed while events are being leased
// and recorded: the consumer moves to another server, and every event is
// delivered.
func TestConsumerLeaderKilledMidDelivery(t *testing.T) {
	servers := natstest.Cluster(t, 3)
	nc := connect(t, servers...)
	s, err := natsstore.Open(context.Background(), nc, natsstore.Options{
		Prefix: "ckill", Replicas: 3, LeaseTTL: 3 * time.Second, Timeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Configure("in", 4)
	const n = 150
	var ids []string
	for i := range n {
		id, _, err := s.Enqueue(context.Background(), &store.Event{Inbox: "in", Body: fmt.Append(nil, i)}, store.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}

	// The consumer exists once a lease made it.
	if id, _, err := s.Lease("in", time.Now(), false); err != nil || id == "" {
		t.Fatalf("first lease: %q %v", id, err)
	} else {
		s.Release(id)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var leaderName string
	deadline := time.Now().Add(10 * time.Second)
	for leaderName == "" && time.Now().Before(deadline) {
		stream, err := js.Stream(context.Background(), "CKILL_DUE")
		if err != nil {
			t.Fatal(err)
		}
		for info := range stream.ListConsumers(context.Background()).Info() {
			if info.Cluster != nil {
				leaderName = info.Cluster.Leader
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if leaderName == "" {
		t.Fatal("no consumer leader found")
	}
	var delivered atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				id, _, err := s.Lease("in", time.Now(), false)
				if err != nil || id == "" {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				time.Sleep(40 * time.Millisecond) // the app at work
				if _, err := s.Record(id, store.Attempt{At: time.Now(), Outcome: store.OutcomeOK}, store.Next{Delivered: true}); err == nil {
					delivered.Add(1)
				} else {
					s.Release(id)
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()

	time.Sleep(300 * time.Millisecond)
	if delivered.Load() > n/2 {
		t.Fatalf("%d of %d delivered already: the kill would come too late", delivered.Load(), n)
	}
	for _, srv := range servers {
		if srv.Name() == leaderName {
			srv.Shutdown()
		}
	}
	t.Logf("consumer leader %s shut down after %d deliveries", leaderName, delivered.Load())

	deadline = time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		done := 0
		for _, id := range ids {
			if e, _, err := s.Get(id); err == nil && e.State == store.Delivered {
				done++
			}
		}
		if done == n {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Errorf("after the consumer leader died: %d of %d events delivered", delivered.Load(), n)
}

// BenchmarkEnqueueParallel is the Badger store's benchmark of the same name
// on a three-server cluster (R3, every write synced before its ack): about
// 64 concurrent callers, 1 KiB bodies, a dedupe key each. The servers run
// in the benchmark's process, so ns/op includes their work.
func BenchmarkEnqueueParallel(b *testing.B) {
	nc := connect(b, natstest.Cluster(b, 3)...)
	s, err := natsstore.Open(context.Background(), nc, natsstore.Options{Prefix: "bench", Replicas: 3})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body := make([]byte, 1024)
	var n atomic.Int64
	b.SetParallelism(max(64/runtime.GOMAXPROCS(0), 1))
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := &store.Event{Inbox: "bench", Method: "POST", Path: "/hooks/bench", Body: body, DedupeKey: fmt.Sprint(n.Add(1))}
			if _, _, err := s.Enqueue(context.Background(), e, store.Limits{Dedupe: time.Hour}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// Two nodes share the dedupe window and the max_pending cap: the same
// sender key sent to both is stored once, and the cap counts both nodes'
// events.
func TestDedupeAndCapAcrossNodes(t *testing.T) {
	servers := natstest.Cluster(t, 3)
	open := func(nc *nats.Conn) *natsstore.Store {
		s, err := natsstore.Open(context.Background(), nc, natsstore.Options{Prefix: "across", Replicas: 3})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(connect(t, servers[0])), open(connect(t, servers[1]))
	limits := store.Limits{Dedupe: time.Hour, MaxPending: 3}
	first, dup, err := a.Enqueue(context.Background(), &store.Event{Inbox: "in", DedupeKey: "evt_1"}, limits)
	if err != nil || dup {
		t.Fatal(err, dup)
	}
	again, dup, err := b.Enqueue(context.Background(), &store.Event{Inbox: "in", DedupeKey: "evt_1"}, limits)
	if err != nil || !dup || again != first {
		t.Errorf("the same key on the other node: %s duplicate %v %v; want %s as a duplicate", again, dup, err, first)
	}
	for i, s := range []*natsstore.Store{b, a} {
		if _, _, err := s.Enqueue(context.Background(), &store.Event{Inbox: "in", DedupeKey: fmt.Sprint("k", i)}, limits); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := b.Enqueue(context.Background(), &store.Event{Inbox: "in", DedupeKey: "k9"}, limits); !errors.Is(err, store.ErrInboxFull) {
		t.Errorf("a fourth event across the nodes with max_pending 3: %v, want ErrInboxFull", err)
	}
}

// BenchmarkDeliverParallel delivers a backlog as internal/deliver's
// dispatcher does: one goroutine leases, each leased event is loaded and
// its attempt recorded on a goroutine of its own, at most 64 at a time
// (concurrency 64, each attempt a success). Three servers (R3, every write
// synced) run in the benchmark's process: ns/op is the store's whole cost
// of one delivery.
func BenchmarkDeliverParallel(b *testing.B) {
	nc := connect(b, natstest.Cluster(b, 3)...)
	s, err := natsstore.Open(context.Background(), nc, natsstore.Options{Prefix: "deliver", Replicas: 3})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const slots = 64
	s.Configure("bench", slots)
	body := make([]byte, 1024)
	var wg sync.WaitGroup
	var n atomic.Int64
	for range 16 {
		wg.Go(func() {
			for n.Add(1) <= int64(b.N) {
				if _, _, err := s.Enqueue(context.Background(), &store.Event{Inbox: "bench", Body: body}, store.Limits{}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ResetTimer()
	free := make(chan struct{}, slots)
	for range slots {
		free <- struct{}{}
	}
	var done atomic.Int64
	for done.Load() < int64(b.N) {
		<-free
		id, _, err := s.Lease("bench", time.Now(), false)
		if err != nil {
			b.Fatal(err)
		}
		if id == "" {
			free <- struct{}{}
			select {
			case <-s.Wake("bench"):
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		wg.Go(func() {
			defer func() { free <- struct{}{} }()
			e, err := s.Load(id, time.Now())
			if err != nil || e == nil {
				b.Error(id, e, err)
				return
			}
			if _, err := s.Record(id, store.Attempt{N: 1, At: time.Now(), Status: 200, Outcome: store.OutcomeOK}, store.Next{Delivered: true}); err != nil {
				b.Error(err)
				return
			}
			done.Add(1)
		})
	}
	wg.Wait()
}
