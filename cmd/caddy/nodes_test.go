package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/hookinbox/hookinbox/internal/natstest"
)

// nodeConfig is one Caddy node of a cluster sharing the inboxes through
// the NATS servers at urls: "shared" (concurrency 4) and "seq" (ordered).
func nodeConfig(adminAddr, dir, addr, urls, app string) string {
	return fmt.Sprintf(`{
	admin %s
	storage file_system %s
	hookinbox {
		store nats {
			servers %s
			replicas 3
		}
	}
}
http://%s {
	route /shared {
		hookinbox shared {
			forward %s/shared
			concurrency 4
			timeout 5s
			retry 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms
		}
	}
	route /seq {
		hookinbox seq {
			forward %s/seq
			ordered
			timeout 5s
			retry 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms
		}
	}
}
`, adminAddr, filepath.Join(dir, "caddy"), urls, addr, app, app)
}

// TestTwoNodesOneClusterLoseNothing runs two Caddy nodes on one cluster of
// three NATS servers, sends to both, and kills one Caddy node (SIGKILL) and
// one NATS server mid-load: every event that got a 200, from either node,
// is delivered; the survivor's admin API shows the dead node's events;
// ordered holds across the nodes; and deliveries in flight never exceed
// the inbox's concurrency, across the cluster.
func TestTwoNodesOneClusterLoseNothing(t *testing.T) {
	bin := caddyBinary(t)
	cluster := natstest.Cluster(t, 3)
	urls := natstest.URLs(cluster...)

	rec := newRecorder()
	rec.setAnswer(func(r *http.Request, _ string) int {
		time.Sleep(10 * time.Millisecond) // long enough to overlap
		return http.StatusOK
	})
	app := newAppServer(t, rec)

	type node struct {
		srv   *server
		addr  string
		admin adminClient
	}
	var nodes []*node
	var configs []string
	for i := range 2 {
		dir := filepath.Join(t.TempDir(), fmt.Sprint(i))
		addr, adminAddr := freePort(t), freePort(t)
		configs = append(configs, nodeConfig(adminAddr, dir, addr, urls, app.url("")))
		config := writeConfig(t, t.TempDir(), configs[i])
		n := &node{addr: addr, admin: adminClient{t, adminAddr}}
		n.srv = startServer(t, bin, config, addr, logFile(t, filepath.Dir(config)))
		defer n.srv.kill()
		nodes = append(nodes, n)
	}

	// A reload keeps the store, and so its connection to NATS.
	clients := func() (n int) {
		for _, srv := range cluster {
			n += srv.NumClients()
		}
		return n
	}
	before := clients()
	for range 3 {
		if err := nodes[0].admin.load(configs[0]); err != nil {
			t.Fatal(err)
		}
	}
	if after := clients(); after != before {
		t.Errorf("NATS clients: %d before three reloads, %d after; want the connection kept", before, after)
	}

	// Senders on both nodes; the ordered inbox gets its events one at a
	// time, alternating between the nodes, so arrival order is defined.
	var mu sync.Mutex
	var acked []string
	var seqAcked []int
	byNode := map[int][]string{} // node -> ids it acknowledged
	stop := make(chan struct{})
	var sent atomic.Int64
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			s := newSender("http://" + nodes[i].addr + "/shared")
			for k := 0; k < 3000; k++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf(`{"node":%d,"n":%d}`, i, k)
				sent.Add(1)
				a, err := s.send(body)
				if err == nil && a.status == http.StatusOK {
					mu.Lock()
					acked = append(acked, body)
					byNode[i] = append(byNode[i], a.eventID())
					mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	wg.Go(func() {
		for k := 0; k < 3000; k++ {
			select {
			case <-stop:
				return
			default:
			}
			n := nodes[k%2]
			if !n.srv.alive() {
				n = nodes[0]
			}
			a, err := newSender("http://" + n.addr + "/seq").send(fmt.Sprintf(`{"seq":%d}`, k))
			if err == nil && a.status == http.StatusOK {
				mu.Lock()
				seqAcked = append(seqAcked, k)
				mu.Unlock()
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	count := func() (all, ofNode1 int) {
		mu.Lock()
		defer mu.Unlock()
		return len(acked), len(byNode[1])
	}
	// Mid-load: once node 1 has acknowledged some events, it and one NATS
	// server die; the load goes on through node 0 for as many again.
	waitFor(t, "node 1 to acknowledge 30 events", 30*time.Second, func() bool { _, n := count(); return n >= 30 })
	nodes[1].srv.kill()
	cluster[2].Shutdown()
	atKill, _ := count()
	waitFor(t, "node 0 to acknowledge 50 more", 30*time.Second, func() bool { n, _ := count(); return n >= atKill+50 })
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	var seqBodies []string
	for _, n := range seqAcked {
		seqBodies = append(seqBodies, fmt.Sprintf(`{"seq":%d}`, n))
	}
	waitFor(t, "every acknowledged event delivered", 60*time.Second, func() bool {
		return len(rec.missing(acked)) == 0 && len(rec.missing(seqBodies)) == 0
	})
	distinct, duplicates := rec.counts()
	t.Logf("%d sent, %d + %d acknowledged (node 1 acknowledged %d before it was killed); %d distinct delivered, %d duplicates; peak in flight %d",
		sent.Load(), len(acked), len(seqAcked), len(byNode[1]), distinct, duplicates, rec.peakOf("shared"))
	if missing := rec.missing(acked); len(missing) > 0 {
		t.Errorf("%d acknowledged events never delivered, e.g. %s", len(missing), missing[0])
	}
	checkOrder(t, "seq", rec.orderOf("seq"), seqAcked)
	if p := rec.peakOf("shared"); p > 4 {
		t.Errorf("%d deliveries of inbox shared in flight at once across the nodes, want at most its concurrency 4", p)
	}
	// The dead node's in-flight deliveries are repeated at most.
	if duplicates > 2*(4+1) {
		t.Errorf("%d duplicates, want at most the deliveries the dead node had in flight, twice", duplicates)
	}
	if len(byNode[1]) == 0 {
		t.Fatal("the killed node acknowledged nothing")
	}
	// The app has every event; the record of the last delivery may still
	// be on its way (a delivery the dead node held is taken over after its
	// lease runs out).
	id := byNode[1][len(byNode[1])-1]
	var e struct {
		State string `json:"state"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for nodes[0].admin.get("/hookinbox/events/"+id, &e); e.State != "delivered" && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		nodes[0].admin.get("/hookinbox/events/"+id, &e)
	}
	if e.State != "delivered" {
		t.Errorf("the survivor shows the dead node's event %s as %q, want delivered", id, e.State)
	}
}

// TestThreeNodesEmbedded runs three Caddy nodes that each run their own
// JetStream server (store nats { embedded { … } }), clustered with each
// other: nothing else runs. One node is SIGKILLed mid-load, its JetStream
// server with it; the two left keep a quorum, and every event any node
// acknowledged is delivered.
func TestThreeNodesEmbedded(t *testing.T) {
	bin := caddyBinary(t)
	rec := newRecorder()
	app := newAppServer(t, rec)

	type node struct {
		srv         *server
		addr, admin string
	}
	var routes []string
	var clusters, clients []string
	for range 3 {
		c := freePort(t)
		clusters = append(clusters, c)
		clients = append(clients, freePort(t))
		routes = append(routes, "nats-route://"+c)
	}
	nodes := make([]*node, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		dir := t.TempDir()
		n := &node{addr: freePort(t), admin: freePort(t)}
		var others []string
		for j, r := range routes {
			if j != i {
				others = append(others, r)
			}
		}
		config := writeConfig(t, dir, fmt.Sprintf(`{
	admin %s
	hookinbox {
		store nats {
			embedded {
				listen %s
				cluster %s
				routes %s
				name node%d
				storage %s
			}
		}
	}
}
http://%s {
	hookinbox shared {
		forward %s/shared
		concurrency 4
		timeout 5s
		retry 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms
	}
}
`, n.admin, clients[i], clusters[i], strings.Join(others, " "), i, filepath.Join(dir, "nats"), n.addr, app.url("")))
		logs := logFile(t, dir)
		nodes[i] = n
		// The nodes start together: each waits for the others to place
		// its replicas.
		wg.Go(func() { n.srv = startServer(t, bin, config, n.addr, logs) })
	}
	wg.Wait()
	for _, n := range nodes {
		defer n.srv.kill()
	}

	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	var senders sync.WaitGroup
	for i, n := range nodes {
		senders.Go(func() {
			s := newSender("http://" + n.addr + "/")
			for k := 0; k < 2000; k++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf(`{"node":%d,"n":%d}`, i, k)
				if a, err := s.send(body); err == nil && a.status == http.StatusOK {
					mu.Lock()
					acked = append(acked, body)
					mu.Unlock()
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitFor(t, "60 events acknowledged", 30*time.Second, func() bool { return count() >= 60 })
	nodes[2].srv.kill()
	atKill := count()
	waitFor(t, "40 more acknowledged by the two left", 30*time.Second, func() bool { return count() >= atKill+40 })
	close(stop)
	senders.Wait()

	mu.Lock()
	defer mu.Unlock()
	waitFor(t, "every acknowledged event delivered", 60*time.Second, func() bool { return len(rec.missing(acked)) == 0 })
	distinct, duplicates := rec.counts()
	t.Logf("%d acknowledged (%d before the kill), %d distinct delivered, %d duplicates, peak in flight %d",
		len(acked), atKill, distinct, duplicates, rec.peakOf("shared"))
	if p := rec.peakOf("shared"); p > 4 {
		t.Errorf("%d deliveries in flight at once across the nodes, want at most 4", p)
	}
}

// TestNodeStartsWhileNATSIsAway starts a Caddy node whose NATS server is
// not running yet: Caddy starts all the same (the app's own site is up),
// webhooks get 503 with Retry-After, and once NATS is there the node opens
// the store by itself, accepts webhooks and delivers them.
func TestNodeStartsWhileNATSIsAway(t *testing.T) {
	bin := caddyBinary(t)
	natsPort := freePort(t) // nothing listens there yet
	rec := newRecorder()
	app := newAppServer(t, rec)
	dir := t.TempDir()
	addr, adminAddr := freePort(t), freePort(t)
	config := writeConfig(t, dir, fmt.Sprintf(`{
	admin %s
	storage file_system %s
	hookinbox {
		store nats {
			servers nats://%s
			replicas 1
		}
	}
}
http://%s {
	route /hooks {
		hookinbox away {
			forward %s/away
		}
	}
	respond /site "the app's site" 200
}
`, adminAddr, filepath.Join(dir, "caddy"), natsPort, addr, app.url("")))
	srv := startServer(t, bin, config, addr, logFile(t, dir))
	defer srv.kill()

	site, err := http.Get("http://" + addr + "/site")
	if err != nil || site.StatusCode != http.StatusOK {
		t.Fatalf("the site while NATS is away: %v %v; want 200", site, err)
	}
	site.Body.Close()
	s := newSender("http://" + addr + "/hooks")
	a, err := s.send(`{"early":true}`)
	if err != nil || a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
		t.Fatalf("a webhook while NATS is away: %d %q (Retry-After %q), %v; want 503 with Retry-After",
			a.status, a.body, a.header.Get("Retry-After"), err)
	}

	port, _ := strconv.Atoi(natsPort[strings.LastIndexByte(natsPort, ':')+1:])
	natstest.Server(t, func(o *natsserver.Options) { o.Port = port })
	var acked []string
	waitFor(t, "a 200 once NATS is up", time.Minute, func() bool {
		body := fmt.Sprintf(`{"n":%d}`, len(acked))
		a, err := s.send(body)
		if err == nil && a.status == http.StatusOK {
			acked = append(acked, body)
			return true
		}
		time.Sleep(200 * time.Millisecond)
		return false
	})
	waitFor(t, "the delivery", 30*time.Second, func() bool { return len(rec.missing(acked)) == 0 })
	if !srv.alive() {
		t.Fatal("caddy exited")
	}
}
