package caddymodule

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/hookinbox/hookinbox/internal/store"
)

func init() {
	caddy.RegisterModule(BadgerStore{})
}

// StoreModule is a store the hookinbox app can keep its events in: a Caddy
// module in the namespace hookinbox.stores. The app opens it once per
// process for each StoreKey, and keeps it open across config reloads.
type StoreModule interface {
	// StoreKey names the stored data: two configs whose stores have the
	// same key share one open store.
	StoreKey() string
	// OpenStore opens the store. It is called once per key, from the
	// first config that starts with it; the last config using it closes it.
	// ctx is done when that last config is gone before the open ended.
	OpenStore(ctx context.Context, logger *zap.Logger) (store.Store, error)
}

// A remoteStore is a StoreModule whose events live on other machines,
// which may be away when Caddy starts. Caddy then starts all the same:
// the rest of the server (the app behind the inboxes, to begin with) must
// not go down with the store. Webhooks get 503 and Retry-After until the
// store opens, and the app tries to open it until it does.
type remoteStore interface {
	StoreModule
	remote()
}

// BadgerStore keeps every inbox's events in an embedded Badger database,
// on this node's disk: nothing else to run. It is the default store.
type BadgerStore struct {
	// Dir is the database's directory. Default: Caddy's data directory +
	// "/hookinbox".
	Dir string `json:"dir,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (BadgerStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "hookinbox.stores.badger",
		New: func() caddy.Module { return new(BadgerStore) },
	}
}

// Provision applies the default directory and makes it absolute: the key
// of the open store must not depend on the working directory.
func (b *BadgerStore) Provision(caddy.Context) error {
	if b.Dir == "" {
		b.Dir = filepath.Join(caddy.AppDataDir(), "hookinbox")
	}
	dir, err := filepath.Abs(b.Dir)
	if err != nil {
		return fmt.Errorf("storage directory %s: %v", b.Dir, err)
	}
	b.Dir = dir
	return nil
}

// StoreKey implements StoreModule: one Badger database per directory.
func (b *BadgerStore) StoreKey() string { return "badger:" + b.Dir }

// OpenStore implements StoreModule. Badger locks its directory: a second
// open, even in the same process, fails, hence one open store per key.
func (b *BadgerStore) OpenStore(_ context.Context, logger *zap.Logger) (store.Store, error) {
	db, err := store.Open(b.Dir, store.Options{Logger: logger, Faults: testStoreFaults})
	if err != nil {
		return nil, fmt.Errorf("opening inbox store %s: %v", b.Dir, err)
	}
	return db, nil
}

// testStoreFaults, if set (tests in this package), is the fault seam of
// every Badger store the app opens.
var testStoreFaults *store.Faults

// UnmarshalCaddyfile sets up the store from Caddyfile tokens:
//
//	store badger [<dir>]
func (b *BadgerStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name
	if d.NextArg() {
		b.Dir = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Err("store badger takes no block")
	}
	return nil
}

// Interface guards
var (
	_ StoreModule           = (*BadgerStore)(nil)
	_ caddy.Provisioner     = (*BadgerStore)(nil)
	_ caddyfile.Unmarshaler = (*BadgerStore)(nil)
)
