package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/hookinbox/hookinbox/internal/natsstore"
	"github.com/hookinbox/hookinbox/internal/store"
)

func init() {
	caddy.RegisterModule(NATSStore{})
}

// Defaults of the nats store.
const (
	defaultNATSServer   = "nats://127.0.0.1:4222"
	defaultNATSReplicas = 3
)

// NATSStore keeps every inbox's events in NATS JetStream, so that several
// Caddy nodes share every inbox: any node takes any inbox's webhooks and
// any node delivers them. Run nats-server with JetStream, in a cluster of
// three with `sync_interval: always` (README: "Several nodes").
type NATSStore struct {
	// Servers are the NATS URLs to connect to. Default:
	// nats://127.0.0.1:4222.
	Servers []string `json:"servers,omitempty"`
	// Credentials is a NATS credentials file (a JWT and an nkey seed).
	Credentials string `json:"credentials,omitempty"`
	// User and Password, or Token, authenticate with the server. They take
	// placeholders ({env.NATS_PASSWORD}, {file./path}).
	User     string `json:"user,omitempty"`
	Password string `json:"password,omitempty"`
	Token    string `json:"token,omitempty"`
	// NKey is a file holding an nkey seed.
	NKey string `json:"nkey,omitempty"`
	// TLS to the servers.
	TLS *NATSTLS `json:"tls,omitempty"`
	// Replicas is how many JetStream servers hold each stored thing before
	// a sender gets its 200. Default: 3.
	Replicas int `json:"replicas,omitempty"`
	// Prefix names the streams, buckets and subjects. Default: hookinbox.
	Prefix string `json:"prefix,omitempty"`
	// Embedded runs a JetStream server inside this Caddy, clustered with
	// the other nodes' (Routes): three Caddy nodes then need nothing else.
	// It lives as long as the store, across config reloads.
	Embedded *EmbeddedNATS `json:"embedded,omitempty"`
}

// EmbeddedNATS is the JetStream server a Caddy node runs itself.
type EmbeddedNATS struct {
	// Listen is the client address. Default: 127.0.0.1:4222.
	Listen string `json:"listen,omitempty"`
	// Cluster is this node's route address, which the other nodes' Routes
	// name. Without it the server runs alone.
	Cluster string `json:"cluster,omitempty"`
	// Routes are the other nodes' route URLs (nats-route://host:port).
	Routes []string `json:"routes,omitempty"`
	// Name is this node's server name, unique in the cluster. Default: the
	// host name.
	Name string `json:"name,omitempty"`
	// Storage is JetStream's directory. Default: Caddy's data directory +
	// "/hookinbox-nats".
	Storage string `json:"storage,omitempty"`
}

// NATSTLS is the TLS of the connection to NATS.
type NATSTLS struct {
	// CA is a file of the certificate authorities the servers' certificates
	// are checked against.
	CA string `json:"ca,omitempty"`
	// Cert and Key are this node's client certificate and key files.
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (NATSStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "hookinbox.stores.nats",
		New: func() caddy.Module { return new(NATSStore) },
	}
}

// Provision applies the defaults.
func (n *NATSStore) Provision(caddy.Context) error {
	if e := n.Embedded; e != nil {
		if e.Listen == "" {
			e.Listen = "127.0.0.1:4222"
		}
		if e.Name == "" {
			e.Name, _ = os.Hostname()
		}
		if e.Storage == "" {
			e.Storage = filepath.Join(caddy.AppDataDir(), "hookinbox-nats")
		}
		if len(n.Servers) == 0 {
			n.Servers = []string{"nats://" + e.Listen}
		}
	}
	if len(n.Servers) == 0 {
		n.Servers = []string{defaultNATSServer}
	}
	if n.Replicas <= 0 {
		n.Replicas = defaultNATSReplicas
	}
	if n.Prefix == "" {
		n.Prefix = "hookinbox"
	}
	if n.TLS != nil && (n.TLS.Cert == "") != (n.TLS.Key == "") {
		return errors.New("store nats: tls cert and key go together")
	}
	return nil
}

// StoreKey implements StoreModule: one connection and store per set of
// servers and prefix, kept across reloads.
func (n *NATSStore) StoreKey() string {
	servers := slices.Sorted(slices.Values(n.Servers))
	return "nats:" + n.Prefix + "@" + strings.Join(servers, ",")
}

// OpenStore implements StoreModule: it connects (retrying for ever once
// connected: the store answers 503 while NATS is away and resumes by
// itself) and opens the streams and buckets. An open that fails is tried
// again by the app (remoteStore), so NATS may be away when Caddy starts.
func (n *NATSStore) OpenStore(ctx context.Context, logger *zap.Logger) (store.Store, error) {
	var embedded *server.Server
	if n.Embedded != nil {
		var err error
		if embedded, err = n.Embedded.start(logger); err != nil {
			return nil, err
		}
	}
	st, err := n.open(ctx, logger)
	if err != nil {
		if embedded != nil {
			embedded.Shutdown()
		}
		return nil, err
	}
	st.embedded = embedded
	return st, nil
}

func (n *NATSStore) open(ctx context.Context, logger *zap.Logger) (*natsConnStore, error) {
	repl := secretReplacer()
	opts := []nats.Option{
		nats.Name("hookinbox"),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("disconnected from NATS; webhooks get 503 until it is back", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("reconnected to NATS", zap.String("server", nc.ConnectedUrlRedacted()))
		}),
	}
	switch {
	case n.Credentials != "":
		opts = append(opts, nats.UserCredentials(n.Credentials))
	case n.NKey != "":
		o, err := nats.NkeyOptionFromSeed(n.NKey)
		if err != nil {
			return nil, fmt.Errorf("store nats: nkey: %v", err)
		}
		opts = append(opts, o)
	case n.Token != "":
		opts = append(opts, nats.Token(repl.ReplaceKnown(n.Token, "")))
	case n.User != "":
		opts = append(opts, nats.UserInfo(repl.ReplaceKnown(n.User, ""), repl.ReplaceKnown(n.Password, "")))
	}
	if t := n.TLS; t != nil {
		if t.CA != "" {
			opts = append(opts, nats.RootCAs(t.CA))
		}
		if t.Cert != "" {
			opts = append(opts, nats.ClientCert(t.Cert, t.Key))
		}
	}
	nc, err := nats.Connect(strings.Join(n.Servers, ","), opts...)
	if err != nil {
		// NATS's errors name the URL, which may carry credentials.
		return nil, fmt.Errorf("store nats: connecting to %d server(s): %v", len(n.Servers), err)
	}
	ctx, cancel := context.WithTimeout(ctx, natsOpenTimeout)
	defer cancel()
	st, err := natsstore.Open(ctx, nc, natsstore.Options{
		Prefix:   n.Prefix,
		Replicas: n.Replicas,
		LeaseTTL: natsLeaseTTL,
		Faults:   testStoreFaults,
	})
	if err != nil {
		known := len(nc.Servers())
		nc.Close()
		return nil, fmt.Errorf("store nats: opening the streams with replicas %d (this node knows %d NATS server(s) in the cluster): %v",
			n.Replicas, known, err)
	}
	return &natsConnStore{Store: st, nc: nc}, nil
}

// natsLeaseTTL is how long the deliveries of a node that died stay taken:
// short, so that others take them over within a few seconds, whatever the
// inboxes' timeouts (a live node refreshes its leases a few times a TTL).
const natsLeaseTTL = 5 * time.Second

// natsOpenTimeout bounds creating the streams and buckets at start.
const natsOpenTimeout = 30 * time.Second

// natsConnStore closes its connection with the store: the engine's pool
// closes the store when the last config using it is gone.
type natsConnStore struct {
	*natsstore.Store
	nc       *nats.Conn
	embedded *server.Server // nil without embedded
}

func (s *natsConnStore) Close() error {
	err := s.Store.Close()
	s.nc.Close()
	if s.embedded != nil {
		s.embedded.Shutdown()
		s.embedded.WaitForShutdown()
	}
	return err
}

// start runs the embedded JetStream server, syncing every write before
// its ack (the README's sync_interval: always), and waits until it takes
// clients.
func (e *EmbeddedNATS) start(logger *zap.Logger) (*server.Server, error) {
	host, port, err := splitHostPort(e.Listen)
	if err != nil {
		return nil, fmt.Errorf("store nats: embedded listen %q: %v", e.Listen, err)
	}
	opts := &server.Options{
		ServerName: e.Name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   e.Storage,
		SyncAlways: true,
		NoSigs:     true,
	}
	if e.Cluster != "" {
		chost, cport, err := splitHostPort(e.Cluster)
		if err != nil {
			return nil, fmt.Errorf("store nats: embedded cluster %q: %v", e.Cluster, err)
		}
		opts.Cluster.Name = "hookinbox"
		opts.Cluster.Host, opts.Cluster.Port = chost, cport
		opts.Routes = server.RoutesFromStr(strings.Join(e.Routes, ","))
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("store nats: embedded server: %v", err)
	}
	srv.SetLogger(natsLogger{logger.Named("nats").Sugar()}, false, false)
	go srv.Start()
	if !srv.ReadyForConnections(natsOpenTimeout) {
		srv.Shutdown()
		return nil, fmt.Errorf("store nats: the embedded server did not start listening on %s", e.Listen)
	}
	logger.Info("embedded NATS JetStream server running",
		zap.String("name", e.Name), zap.String("listen", e.Listen), zap.String("cluster", e.Cluster))
	return srv, nil
}

// natsLogger routes the embedded server's log into Caddy's. Its notices
// (every route and client connection) are Debug here.
type natsLogger struct{ l *zap.SugaredLogger }

func (n natsLogger) Noticef(f string, a ...any) { n.l.Debugf(f, a...) }
func (n natsLogger) Warnf(f string, a ...any)   { n.l.Warnf(f, a...) }
func (n natsLogger) Fatalf(f string, a ...any)  { n.l.Errorf(f, a...) }
func (n natsLogger) Errorf(f string, a ...any)  { n.l.Errorf(f, a...) }
func (n natsLogger) Debugf(f string, a ...any)  { n.l.Debugf(f, a...) }
func (n natsLogger) Tracef(f string, a ...any)  {}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	return host, port, err
}

// UnmarshalCaddyfile sets up the store from Caddyfile tokens:
//
//	store nats {
//		servers     <url…>
//		credentials <file>
//		user        <user>
//		password    <password>
//		token       <token>
//		nkey        <seed file>
//		tls {
//			ca   <file>
//			cert <file>
//			key  <file>
//		}
//		replicas    <n>
//		prefix      <name>
//		embedded {
//			listen  <addr>
//			cluster <addr>
//			routes  <url…>
//			name    <name>
//			storage <dir>
//		}
//	}
func (n *NATSStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name
	if d.NextArg() {
		return d.ArgErr()
	}
	one := func(dst *string) error {
		if !d.NextArg() {
			return d.ArgErr()
		}
		*dst = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
		return nil
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "servers":
			n.Servers = append(n.Servers, d.RemainingArgs()...)
			if len(n.Servers) == 0 {
				return d.ArgErr()
			}
		case "credentials":
			err = one(&n.Credentials)
		case "user":
			err = one(&n.User)
		case "password":
			err = one(&n.Password)
		case "token":
			err = one(&n.Token)
		case "nkey":
			err = one(&n.NKey)
		case "prefix":
			err = one(&n.Prefix)
		case "replicas":
			var v string
			if err = one(&v); err == nil {
				if _, serr := fmt.Sscanf(v, "%d", &n.Replicas); serr != nil || n.Replicas < 1 {
					return d.Errf("replicas: %q is not a positive number", v)
				}
			}
		case "tls":
			n.TLS = new(NATSTLS)
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch d.Val() {
				case "ca":
					err = one(&n.TLS.CA)
				case "cert":
					err = one(&n.TLS.Cert)
				case "key":
					err = one(&n.TLS.Key)
				default:
					return d.Errf("unknown store nats tls option %q", d.Val())
				}
				if err != nil {
					return err
				}
			}
		case "embedded":
			n.Embedded = new(EmbeddedNATS)
			if d.NextArg() {
				return d.ArgErr()
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch d.Val() {
				case "listen":
					err = one(&n.Embedded.Listen)
				case "cluster":
					err = one(&n.Embedded.Cluster)
				case "name":
					err = one(&n.Embedded.Name)
				case "storage":
					err = one(&n.Embedded.Storage)
				case "routes":
					n.Embedded.Routes = append(n.Embedded.Routes, d.RemainingArgs()...)
					if len(n.Embedded.Routes) == 0 {
						return d.ArgErr()
					}
				default:
					return d.Errf("unknown store nats embedded option %q", d.Val())
				}
				if err != nil {
					return err
				}
			}
		default:
			return d.Errf("unknown store nats option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// remote implements remoteStore: the servers may be away at start, and
// an embedded server may wait for its peers' quorum.
func (n *NATSStore) remote() {}

// Interface guards
var (
	_ remoteStore           = (*NATSStore)(nil)
	_ caddy.Provisioner     = (*NATSStore)(nil)
	_ caddyfile.Unmarshaler = (*NATSStore)(nil)
	_ store.Store           = (*natsConnStore)(nil)
)
