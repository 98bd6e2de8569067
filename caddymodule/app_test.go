package caddymodule

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/hookinbox/hookinbox/internal/deliver"
)

// testApp is the hookinbox app of one config, with the given inboxes,
// sharing engine e.
func testApp(e *engine, inboxes ...string) *App {
	a := &App{
		Retention: caddy.Duration(time.Hour),
		engine:    e,
		metrics:   newMetrics(prometheus.NewRegistry()),
		logger:    zap.NewNop(),
		inboxes:   make(map[string]deliver.Inbox),
	}
	for _, name := range inboxes {
		a.inboxes[name] = deliver.Inbox{Name: name, Forward: "http://127.0.0.1:1/" + name}
	}
	return a
}

// delivered lists the inboxes the engine's workers deliver, sorted; nil
// when no delivery runs.
func delivered(e *engine) []string {
	b := e.breakers()
	if b == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(b))
}

// Caddy's lifecycle as it calls the app (NOTES.md): a reload starts the new
// config, then stops the old; a config rejected after some apps started is
// stopped, and the old one runs on; a server stop stops the last config.
// Only a config Caddy makes active changes what is delivered.
func TestOnlyTheActiveConfigIsDelivered(t *testing.T) {
	e := &engine{opener: &BadgerStore{Dir: t.TempDir()}, opened: make(chan struct{})}
	t.Cleanup(func() { e.Destruct() })
	steps := []struct {
		name  string
		do    func(apps map[string]*App)
		inbox []string
	}{
		{"first config starts", func(a map[string]*App) { start(t, a["one"]) }, []string{"a"}},
		{"a rejected config starts", func(a map[string]*App) { start(t, a["rejected"]) }, []string{"a"}},
		{"and is stopped", func(a map[string]*App) { a["rejected"].Stop() }, []string{"a"}},
		{"and cleaned up", func(a map[string]*App) { a["rejected"].engine.stopped(a["rejected"]) }, []string{"a"}},
		{"a good reload starts", func(a map[string]*App) { start(t, a["two"]) }, []string{"a"}},
		{"then the old one stops", func(a map[string]*App) { a["one"].Stop() }, []string{"b"}},
		{"the old one's stop is repeated", func(a map[string]*App) { a["one"].Stop() }, []string{"b"}},
		{"ten rejected configs", func(a map[string]*App) {
			for range 10 {
				r := testApp(e, "x")
				start(t, r)
				r.Stop()
			}
		}, []string{"b"}},
		{"the server stops", func(a map[string]*App) { a["two"].Stop() }, nil},
	}
	apps := map[string]*App{
		"one":      testApp(e, "a"),
		"rejected": testApp(e, "a", "x"),
		"two":      testApp(e, "b"),
	}
	for _, s := range steps {
		s.do(apps)
		if got := delivered(e); !slices.Equal(got, s.inbox) {
			t.Fatalf("%s: delivering %v, want %v", s.name, got, s.inbox)
		}
	}
}

func start(t *testing.T, a *App) {
	t.Helper()
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
}

// storage and store say the same thing two ways: both at once is refused
// rather than one silently winning.
func TestStorageAndStoreTogetherAreRefused(t *testing.T) {
	a := &App{Storage: t.TempDir(), StoreRaw: []byte(`{"module":"badger","dir":"/elsewhere"}`)}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := a.Provision(ctx); err == nil || !strings.Contains(err.Error(), "shorthand") {
		t.Errorf("Provision = %v, want an error naming the shorthand", err)
	}
}

// The store module is what the app opens: a badger store named in JSON
// keys the engine by its directory, as the storage shorthand does.
func TestStoreModuleKeysTheEngine(t *testing.T) {
	dir := t.TempDir()
	for _, a := range []*App{
		{StoreRaw: []byte(`{"module":"badger","dir":"` + dir + `"}`)},
		{Storage: dir},
	} {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		if err := a.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		if got, want := a.store.StoreKey(), "badger:"+dir; got != want {
			t.Errorf("store key %q, want %q", got, want)
		}
		if err := a.Cleanup(); err != nil {
			t.Error(err)
		}
		cancel()
	}
}
