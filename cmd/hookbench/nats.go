package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The nats rows (issue #14): the same inboxes as the Badger rows, on a
// second Caddy whose store is a local JetStream cluster of three
// nats-server processes, as the README asks users to run it: R3 and
// sync_interval: always, so a 200 means the event is synced on two of three
// servers. The servers' CPU is read from /proc beside Caddy's: with nats,
// part of the store's work moves into them.

// natsReplicas is the stream replication of the benchmark's store.
const natsReplicas = 3

// buildNATS builds nats-server from the module in go.mod (a test
// dependency already), so the figures are of the version the tests run.
func buildNATS(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "nats-server")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build nats-server: %v\n%s", err, out)
	}
	return bin, nil
}

// natsNode is one server's place in the cluster.
type natsNode struct {
	name          string
	client, route string // host:port
	storeDir      string
}

// natsConfig is the configuration file of node n in a cluster of nodes:
// JetStream synced before every ack, routes to every other node.
func natsConfig(n natsNode, nodes []natsNode) string {
	var routes []string
	for _, o := range nodes {
		if o.name != n.name {
			routes = append(routes, fmt.Sprintf("\t\t%q", "nats-route://"+o.route))
		}
	}
	return fmt.Sprintf(`server_name: %q
listen: %q
jetstream {
	store_dir: %q
	sync_interval: always
}
cluster {
	name: "hookbench"
	listen: %q
	routes: [
%s
	]
}
`, n.name, n.client, n.storeDir, n.route, strings.Join(routes, "\n"))
}

// natsServer is one running nats-server.
type natsServer struct {
	natsNode
	cmd    *exec.Cmd
	exited chan struct{}
}

func (s *natsServer) cpuTime() (time.Duration, error) { return processCPU(s.cmd.Process.Pid) }

// natsCluster is the three servers. stop must be called on every way out
// of the harness (bench.measureMain defers it; a signal runs it through
// onExit; and each process gets SIGKILL if the harness dies regardless).
type natsCluster struct {
	servers []*natsServer
	forget  func()
}

// startNATS writes the three configs into dir/nats and starts the servers,
// logging to dir/nats-<name>.log. Once every client port listens it
// returns; the cluster elects its JetStream leader after that, which the
// store waits for when it creates its streams.
func startNATS(bin, dir string) (*natsCluster, error) {
	nodes := make([]natsNode, 3)
	for i := range nodes {
		client, err := freeAddr()
		if err != nil {
			return nil, err
		}
		route, err := freeAddr()
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("n%d", i+1)
		nodes[i] = natsNode{name: name, client: client, route: route, storeDir: filepath.Join(dir, "nats", name)}
	}
	c := &natsCluster{}
	c.forget = onExit(c.kill)
	for _, n := range nodes {
		s, err := startNATSServer(bin, dir, n, nodes)
		if err != nil {
			c.stop()
			return nil, err
		}
		c.servers = append(c.servers, s)
	}
	for _, s := range c.servers {
		if err := s.waitListening(30 * time.Second); err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

func startNATSServer(bin, dir string, n natsNode, nodes []natsNode) (*natsServer, error) {
	if err := os.MkdirAll(n.storeDir, 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nats", n.name+".conf")
	if err := os.WriteFile(conf, []byte(natsConfig(n, nodes)), 0o600); err != nil {
		return nil, err
	}
	logs, err := os.OpenFile(filepath.Join(dir, "nats-"+n.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = dieWithHarness()
	if err := cmd.Start(); err != nil {
		logs.Close()
		return nil, fmt.Errorf("starting nats-server %s: %v", n.name, err)
	}
	s := &natsServer{natsNode: n, cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logs.Close()
		close(s.exited)
	}()
	return s, nil
}

func (s *natsServer) waitListening(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("nats-server %s exited before listening (see nats-%s.log, -keep keeps it)", s.name, s.name)
		default:
		}
		c, err := net.DialTimeout("tcp", s.client, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nats-server %s did not listen on %s within %v", s.name, s.client, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *natsCluster) urls() []string {
	urls := make([]string, len(c.servers))
	for i, s := range c.servers {
		urls[i] = "nats://" + s.client
	}
	return urls
}

func (c *natsCluster) readers() []cpuReader {
	rs := make([]cpuReader, len(c.servers))
	for i, s := range c.servers {
		rs[i] = s
	}
	return rs
}

// stop ends every server (SIGTERM, then SIGKILL after 10 s) and waits
// until each has exited. It may be called more than once.
func (c *natsCluster) stop() {
	if c == nil {
		return
	}
	for _, s := range c.servers {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range c.servers {
		select {
		case <-s.exited:
		case <-time.After(time.Until(deadline)):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	}
	c.forget()
}

// kill is stop for a harness that is exiting now: SIGKILL, no wait for a
// graceful shutdown.
func (c *natsCluster) kill() {
	for _, s := range c.servers {
		_ = s.cmd.Process.Kill()
	}
	for _, s := range c.servers {
		select {
		case <-s.exited:
		case <-time.After(2 * time.Second):
		}
	}
}
