// Package caddymodule plugs hookinbox into Caddy: the hookinbox app (the
// event store and its deliveries), the hookinbox HTTP handler, their
// Caddyfile forms, the admin API, the command line and the metrics. It holds
// no webhook logic of its own: that lives in internal/verify, internal/store
// and internal/deliver.
package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/hookinbox/hookinbox/internal/deliver"
	"github.com/hookinbox/hookinbox/internal/store"
)

func init() {
	caddy.RegisterModule(App{})
}

// Defaults of the app's options.
const (
	defaultRetention = 720 * time.Hour
	// stopGrace bounds how long a stopping server waits for deliveries in
	// flight before it releases them for redelivery after the restart.
	stopGrace = 10 * time.Second
	// openWait bounds how long a request waits for the store to open.
	openWait = 5 * time.Second
)

// App is the hookinbox app. It owns the event store (one Badger database per
// storage directory per process) and the delivery workers, which both
// outlive config reloads: the inboxes of the newest config are swapped in
// when it starts.
//
// Handlers use the app even when it is not in the config (it is then
// created with its defaults).
type App struct {
	// StoreRaw is where every inbox's events are kept: a module of the
	// namespace hookinbox.stores. Default: badger, in Caddy's data
	// directory + "/hookinbox".
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=hookinbox.stores inline_key=module"`

	// Storage is a shorthand for the badger store in this directory.
	Storage string `json:"storage,omitempty"`

	// Retention is how long delivered and dead events stay in the history
	// (and replayable) before they are removed. Default: 720h (30 days).
	Retention caddy.Duration `json:"retention,omitempty"`

	store   StoreModule
	engine  *engine
	metrics *metrics
	logger  *zap.Logger
	// ctx is this config's context, for the Caddy events the delivery
	// workers emit while this config is the active one (events.go).
	ctx caddy.Context

	// inboxes is filled by the handlers' Provision, which Caddy runs one
	// at a time before Start, and only read afterwards: no lock needed.
	inboxes map[string]deliver.Inbox
	// secrets are the secret values of every inbox's verifiers, resolved,
	// filled like inboxes; the engine hides them wherever stored requests
	// are shown.
	secrets []string
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "hookinbox",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision applies the defaults and takes the store's engine from the
// pool. It does not open the store: `caddy validate` provisions but never
// starts, and must work while the server holds the store (Badger locks its
// directory).
func (a *App) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	a.logger = ctx.Logger()
	switch {
	case a.StoreRaw != nil && a.Storage != "":
		return errors.New("storage is a shorthand for store badger: set one or the other")
	case a.StoreRaw != nil:
		mod, err := ctx.LoadModule(a, "StoreRaw")
		if err != nil {
			return fmt.Errorf("loading the store: %v", err)
		}
		a.store = mod.(StoreModule)
	default:
		b := &BadgerStore{Dir: a.Storage}
		if err := b.Provision(ctx); err != nil {
			return err
		}
		a.store = b
	}
	if a.Retention <= 0 {
		a.Retention = caddy.Duration(defaultRetention)
	}
	a.inboxes = make(map[string]deliver.Inbox)

	a.metrics = newMetrics(ctx.GetMetricsRegistry())

	val, _, err := engines.LoadOrNew(a.store.StoreKey(), func() (caddy.Destructor, error) {
		return &engine{opener: a.store, opened: make(chan struct{})}, nil
	})
	if err != nil {
		return err
	}
	a.engine = val.(*engine)
	return nil
}

// Start opens the store (once per process). The config's inboxes and
// retention take effect only once Caddy has made this config the active
// one: a config Caddy rejects after some of its apps started changes
// nothing that runs (see engine).
func (a *App) Start() error {
	if err := a.engine.open(a.logger, a.metrics); err != nil {
		return err
	}
	a.engine.started(a)
	return nil
}

// Stop tells the engine this config is stopping: the old config of a
// successful reload (the new one then takes over), a rejected config (it
// never took over), or the last one (the deliveries stop).
func (a *App) Stop() error {
	a.engine.stopped(a)
	return nil
}

// Cleanup gives the store back to the pool; the last user closes it. The
// engine pointer stays: a request still running on this config's handlers
// finds the store closed (a 503) rather than a nil pointer.
func (a *App) Cleanup() error {
	if a.engine == nil {
		return nil
	}
	// Caddy cleans up, without stopping it, a config whose apps started
	// but whose admin setup then failed: it must not wait for ever.
	a.engine.stopped(a)
	_, err := engines.Delete(a.store.StoreKey())
	return err
}

// deliveryInboxes is this config's inboxes, as the delivery workers take them.
func (a *App) deliveryInboxes() []deliver.Inbox {
	inboxes := make([]deliver.Inbox, 0, len(a.inboxes))
	for _, in := range a.inboxes {
		inboxes = append(inboxes, in)
	}
	return inboxes
}

// register adds one handler's inbox to this config. An inbox name is the
// identity of a queue, so two handlers may not claim the same one.
func (a *App) register(in deliver.Inbox) error {
	if _, ok := a.inboxes[in.Name]; ok {
		return fmt.Errorf("inbox %q is configured twice: an inbox name must be unique", in.Name)
	}
	a.inboxes[in.Name] = in
	return nil
}

// noteSecrets adds the resolved secret values of one inbox's verifiers.
func (a *App) noteSecrets(values []string) {
	a.secrets = append(a.secrets, values...)
}

// inbox returns the configured settings of one inbox.
func (a *App) inbox(name string) (deliver.Inbox, bool) {
	in, ok := a.inboxes[name]
	return in, ok
}

// engines holds one engine per storage directory for the whole process.
var engines = caddy.NewUsagePool()

// engine is what outlives a config reload: the open store and the delivery
// workers, with the app whose config they follow.
//
// Caddy starts a new config's apps before it stops the old config's, and
// when one of the new apps fails to start it stops the new apps that had
// started and keeps the old config (NOTES.md). So a Start does not make a
// config active while another one is: the new config waits until the
// active one stops, which Caddy does only once the new one has replaced
// it. A waiting config that stops instead was rejected, and nothing that
// runs has changed.
type engine struct {
	// opener opens the store: the first config's store module.
	opener StoreModule
	// db is read by every ingest request without a lock: a request never
	// waits on a reload or on the deliveries stopping.
	db atomic.Pointer[openStore]
	// opened is closed once db is first set.
	opened     chan struct{}
	openedOnce sync.Once
	// opening is a remote store's open in the background, if one ran;
	// unreachable is set once its first try failed: requests then get
	// their 503 at once instead of waiting for it.
	opening     *opening
	unreachable atomic.Bool

	mu      sync.Mutex
	hooks   deliver.Hooks
	deliver *deliver.Service // nil while no config is active
	active  *App
	waiting []*App // started, not active yet; oldest first
	// secrets holds every secret value configured since the store was
	// opened, and values finds them. A value a reload removed (a rotated
	// hottok) stays: the events stored under it are still in history.
	// Hiding too much is harmless; too little is not.
	secrets map[string]bool
	values  *secretValues
}

func (e *engine) open(logger *zap.Logger, m *metrics) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.db.Load() != nil || e.opening != nil {
		return nil
	}
	e.hooks = m.deliverHooks()
	logger = logger.Named("store")
	if _, ok := e.opener.(remoteStore); ok {
		ctx, cancel := context.WithCancel(context.Background())
		e.opening = &opening{cancel: cancel, done: make(chan struct{})}
		go e.openInBackground(ctx, e.opening.done, logger)
		return nil
	}
	st, err := e.opener.OpenStore(context.Background(), logger)
	if err != nil {
		return err
	}
	e.setStore(st)
	return nil
}

// The wait between two tries to open a remote store: first, then twice as
// long each time, up to the max.
const (
	openRetryFirst = time.Second
	openRetryMax   = 30 * time.Second
)

// opening is a remote store's open running in the background.
type opening struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// openInBackground tries to open a remote store until it opens or the
// last config using it is gone (ctx).
func (e *engine) openInBackground(ctx context.Context, done chan struct{}, logger *zap.Logger) {
	defer close(done)
	wait := openRetryFirst
	for try := 1; ; try++ {
		st, err := e.opener.OpenStore(ctx, logger)
		if err == nil {
			e.mu.Lock()
			defer e.mu.Unlock()
			if ctx.Err() != nil {
				st.Close()
				return
			}
			e.setStore(st)
			if e.active != nil {
				e.activate(e.active)
			}
			if try > 1 {
				logger.Info("store open; webhooks are accepted again", zap.Int("tries", try))
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		e.unreachable.Store(true)
		logger.Error("cannot open the store; webhooks get 503 until it opens",
			zap.Error(err), zap.Int("try", try), zap.Duration("next_try_in", wait))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		wait = min(2*wait, openRetryMax)
	}
}

// setStore makes st the engine's store. e.mu is held.
func (e *engine) setStore(st store.Store) {
	e.db.Store(&openStore{st})
	e.openedOnce.Do(func() { close(e.opened) })
}

// openStore holds a store for an atomic pointer.
type openStore struct{ store.Store }

// started takes in a config whose apps are starting: it becomes the
// active one at once only when no other is.
func (e *engine) started(app *App) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.active == nil {
		e.activate(app)
		return
	}
	if !slices.Contains(e.waiting, app) {
		e.waiting = append(e.waiting, app)
	}
}

// stopped lets go of a config. The active one stopping hands over to the
// newest waiting config (a reload), or stops the deliveries (the server
// stops). A waiting one stopping was rejected: nothing changes.
func (e *engine) stopped(app *App) {
	e.mu.Lock()
	if app != e.active {
		e.waiting = slices.DeleteFunc(e.waiting, func(w *App) bool { return w == app })
		e.mu.Unlock()
		return
	}
	if n := len(e.waiting); n > 0 {
		next := e.waiting[n-1]
		e.waiting = nil
		e.activate(next)
		e.mu.Unlock()
		return
	}
	e.active = nil
	svc := e.deliver
	e.deliver = nil
	e.mu.Unlock()
	// Outside the lock: the admin API and the metrics must not wait for
	// the deliveries in flight.
	if svc != nil {
		stopDeliveries(svc)
	}
}

// activate makes app's config the one the workers follow: its inboxes and
// its retention. Callers hold e.mu.
func (e *engine) activate(app *App) {
	e.active = app
	e.noteSecrets(app.secrets)
	db := e.db.Load()
	if db == nil {
		// A remote store still opening: its deliveries start once it is
		// open (openInBackground).
		return
	}
	db.SetRetention(time.Duration(app.Retention))
	if e.deliver == nil {
		e.deliver = deliver.New(db.Store, app.logger.Named("deliver"), e.hooks)
	}
	e.deliver.SetLogger(app.logger.Named("deliver"))
	e.deliver.Configure(app.deliveryInboxes())
}

func stopDeliveries(svc *deliver.Service) {
	ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	svc.Stop(ctx)
}

// noteSecrets adds secrets to the ones hidden, and prepares them for
// hiding (once per config, not per request). e.mu is held.
func (e *engine) noteSecrets(secrets []string) {
	if e.secrets == nil {
		e.secrets = map[string]bool{}
	}
	added := false
	for _, s := range secrets {
		if !e.secrets[s] {
			e.secrets[s] = true
			added = true
		}
	}
	if added {
		e.values = newSecretValues(slices.Collect(maps.Keys(e.secrets)))
	}
}

// secretValues finds the secret values of every inbox configured since the
// store was opened, for the admin API to hide.
func (e *engine) secretValues() *secretValues {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.values
}

// store returns the open store, or nil before the first Start.
func (e *engine) store() store.Store {
	if db := e.db.Load(); db != nil {
		return db.Store
	}
	return nil
}

// storeWhenOpen returns the open store, waiting up to openWait for the
// first Start: Caddy starts its apps in random order, so the HTTP servers
// may take requests a moment before this app has opened the store.
func (e *engine) storeWhenOpen(ctx context.Context) store.Store {
	if db := e.store(); db != nil || e.unreachable.Load() {
		return db
	}
	t := time.NewTimer(openWait)
	defer t.Stop()
	select {
	case <-e.opened:
	case <-t.C:
	case <-ctx.Done():
	}
	return e.store()
}

// breakers reports the delivery circuit breakers, or nil when no config
// is active.
func (e *engine) breakers() map[string]deliver.BreakerState {
	e.mu.Lock()
	svc := e.deliver
	e.mu.Unlock()
	if svc == nil {
		return nil
	}
	return svc.Breakers()
}

// probe makes an inbox whose circuit breaker is open try its app now: a
// user who replays has usually just fixed the app.
func (e *engine) probe(inbox string) {
	e.mu.Lock()
	svc := e.deliver
	e.mu.Unlock()
	if svc != nil {
		svc.Probe(inbox)
	}
}

// Destruct closes the store when the last config that used it is gone.
func (e *engine) Destruct() error {
	e.mu.Lock()
	svc := e.deliver
	e.deliver, e.active, e.waiting = nil, nil, nil
	opening := e.opening
	e.mu.Unlock()
	if opening != nil {
		// An open that ends now closes what it opened.
		opening.cancel()
		<-opening.done
	}
	if svc != nil {
		stopDeliveries(svc)
	}
	db := e.db.Swap(nil)
	if db == nil {
		return nil
	}
	return db.Close()
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
	_ caddy.Destructor   = (*engine)(nil)
)
