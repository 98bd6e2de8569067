package natsstore_test

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"

	"github.com/hookinbox/hookinbox/internal/natsstore"
	"github.com/hookinbox/hookinbox/internal/store"
	"github.com/hookinbox/hookinbox/internal/storetest"
)

// runServer starts one JetStream server on a loopback port, fsyncing every
// write before its ack, as the README tells users to run it.
func runServer(t *testing.T, dir string, mod func(*server.Options)) *server.Server {
	t.Helper()
	opts := test.DefaultTestOptions
	opts.Port = -1
	opts.JetStream = true
	opts.StoreDir = dir
	opts.SyncAlways = true
	if mod != nil {
		mod(&opts)
	}
	s := test.RunServer(&opts)
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// freePorts returns n loopback ports free right now.
func freePorts(t *testing.T, n int) []int {
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

// runCluster starts a three-server JetStream cluster on loopback and waits
// until it has a meta leader.
func runCluster(t *testing.T) []*server.Server {
	t.Helper()
	ports := freePorts(t, 3)
	routes := ""
	for i, p := range ports {
		if i > 0 {
			routes += ","
		}
		routes += fmt.Sprintf("nats://127.0.0.1:%d", p)
	}
	var servers []*server.Server
	for i, p := range ports {
		servers = append(servers, runServer(t, t.TempDir(), func(o *server.Options) {
			o.ServerName = fmt.Sprintf("n%d", i+1)
			o.Cluster.Name = "hookinbox"
			o.Cluster.Host = "127.0.0.1"
			o.Cluster.Port = p
			o.Routes = server.RoutesFromStr(routes)
		}))
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range servers {
			if s.JetStreamIsLeader() {
				return servers
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the cluster elected no JetStream meta leader")
	return nil
}

func connect(t *testing.T, servers ...*server.Server) *nats.Conn {
	t.Helper()
	url := ""
	for i, s := range servers {
		if i > 0 {
			url += ","
		}
		url += s.ClientURL()
	}
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
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
	nc := connect(t, runServer(t, t.TempDir(), nil))
	storetest.Run(t, opener(nc, 1))
}

// The same on a three-server cluster, everything stored R3.
func TestConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	nc := connect(t, runCluster(t)...)
	storetest.Run(t, opener(nc, 3))
}
