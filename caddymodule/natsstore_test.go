package caddymodule

import (
	"context"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/hookinbox/hookinbox/internal/natstest"
)

// replicas larger than the JetStream cluster is a clear error at start,
// naming both numbers.
func TestNATSReplicasBeyondTheClusterIsAClearError(t *testing.T) {
	srv := natstest.Server(t, nil)
	n := &NATSStore{Servers: []string{srv.ClientURL()}, Replicas: 3}
	if err := n.Provision(caddyContext(t)); err != nil {
		t.Fatal(err)
	}
	st, err := n.OpenStore(context.Background(), zap.NewNop())
	if err == nil {
		st.Close()
		t.Fatal("replicas 3 on one server opened")
	}
	if !strings.Contains(err.Error(), "replicas 3") || !strings.Contains(err.Error(), "knows 1 NATS server") {
		t.Errorf("error = %v; want it to name replicas 3 and the 1 server", err)
	}
}

// A store that opens is a store.Store on the cluster: one event in and
// leased, through the module's own connection.
func TestNATSStoreOpensOnACluster(t *testing.T) {
	cluster := natstest.Cluster(t, 3)
	n := &NATSStore{Servers: strings.Split(natstest.URLs(cluster...), ",")}
	if err := n.Provision(caddyContext(t)); err != nil {
		t.Fatal(err)
	}
	if n.Replicas != 3 || n.Prefix != "hookinbox" {
		t.Errorf("defaults: replicas %d, prefix %q", n.Replicas, n.Prefix)
	}
	st, err := n.OpenStore(context.Background(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Inboxes(); err != nil {
		t.Error(err)
	}
}

func caddyContext(t *testing.T) caddy.Context {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return ctx
}
