// Package natstest runs NATS JetStream servers inside a test's process, on
// loopback ports, set up as the README tells users to run them: JetStream
// on, every write synced before its ack (sync_interval: always). Tests of
// the nats store, and of several Caddy nodes sharing one cluster, use it.
package natstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats-server/v2/test"
)

// Server starts one JetStream server, shut down when the test ends. mod,
// if set, changes its options first.
func Server(t testing.TB, mod func(*server.Options)) *server.Server {
	t.Helper()
	opts := test.DefaultTestOptions
	opts.Port = -1
	opts.JetStream = true
	opts.StoreDir = t.TempDir()
	opts.SyncAlways = true
	if mod != nil {
		mod(&opts)
	}
	return run(t, &opts)
}

// options remembers each server's options, for Restart.
var options sync.Map // *server.Server -> *server.Options

func run(t testing.TB, opts *server.Options) *server.Server {
	s := test.RunServer(opts)
	// Restart listens where this one did.
	again := *opts
	again.Port = s.Addr().(*net.TCPAddr).Port
	options.Store(s, &again)
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Restart starts again, on the same ports and store directory, a server
// Server or Cluster started and the test shut down.
func Restart(t testing.TB, s *server.Server) *server.Server {
	t.Helper()
	s.WaitForShutdown()
	opts, ok := options.Load(s)
	if !ok {
		t.Fatal("natstest: Restart of a server it did not start")
	}
	o := *opts.(*server.Options)
	return run(t, &o)
}

// Cluster starts a cluster of n JetStream servers and waits until it has
// a meta leader that every server follows: before then, a stream with n
// replicas may find no place.
func Cluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	ports := freePorts(t, n)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	var servers []*server.Server
	for i, p := range ports {
		servers = append(servers, Server(t, func(o *server.Options) {
			o.ServerName = fmt.Sprintf("n%d", i+1)
			o.Cluster.Name = "hookinbox"
			o.Cluster.Host = "127.0.0.1"
			o.Cluster.Port = p
			o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		}))
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		leader, current := false, true
		for _, s := range servers {
			leader = leader || s.JetStreamIsLeader()
			current = current && s.JetStreamIsCurrent() && s.NumRoutes() >= n-1
		}
		if leader && current {
			return servers
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the cluster elected no JetStream meta leader that every server follows")
	return nil
}

// URLs are the servers' client URLs, comma-separated.
func URLs(servers ...*server.Server) string {
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.ClientURL())
	}
	return strings.Join(urls, ",")
}

// freePorts returns n loopback ports free right now.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}
