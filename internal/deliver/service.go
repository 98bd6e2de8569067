// Package deliver forwards stored events to the application.
//
// A [Service] runs one dispatcher per inbox. The dispatcher claims due events
// from the store ([Queue]), runs up to the inbox's concurrency of attempts at
// once, classifies each attempt's outcome, records it with what happens next
// (delivered, retry at a time, or dead) and tells the caller through [Hooks].
// The retry schedule lives in the store, not here: a process restart loses
// nothing but the attempts in flight, which the store hands out again.
//
// A circuit breaker per inbox stops claiming while the application is known
// to be down, so that a backlog's retries are not spent against a dead
// backend; it then probes with one event at a time.
//
// This is the only package that imports go-retryablehttp. It is used for one
// narrow job: to resend at once a request that failed because a reused
// keep-alive connection had been closed by the application. Every other
// retry is the store's.
package deliver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"go.uber.org/zap"

	"github.com/hookinbox/hookinbox/internal/store"
)

// Queue is what delivery needs of the store (a subset of store.Store).
type Queue interface {
	// Wake returns a channel (capacity 1) signalled when an event of the
	// inbox may have become due now, and whenever a lease of the inbox
	// ends: the dispatcher may have looked for due events meanwhile.
	Wake(inbox string) <-chan struct{}
	// Lease leases the next event of the inbox due at or before now and
	// returns its id. With ordered, only the oldest unfinished event may be
	// leased, and only when nothing of the inbox is leased. When nothing is
	// due it returns "" and the next due time (zero if none).
	Lease(inbox string, now time.Time, ordered bool) (string, time.Time, error)
	// Load reads a leased event with its body. Nil and no error: the event
	// was finished meanwhile, and its lease is over. On an error the lease
	// stays: Release it.
	Load(id string, now time.Time) (*store.Event, error)
	// Record stores an attempt and what happens next, ends the lease and
	// returns the event as stored. When it fails the lease stays (try
	// again, or Release), but for an event deleted meanwhile
	// (store.ErrNotFound), whose lease it ends.
	Record(id string, a store.Attempt, next store.Next) (*store.Event, error)
	// Release ends a lease without an attempt: the event is due again.
	Release(id string)
}

// concurrencyBound is a queue that bounds an inbox's leases itself: a
// store shared by several nodes, where the bound holds across all of them
// and this node's own count is not enough.
type concurrencyBound interface {
	Configure(inbox string, concurrency int)
}

// Inbox is one inbox's delivery settings, as configured.
//
// Zero values that make no sense get the documented defaults (Method,
// Timeout, Concurrency); an empty Retry means no retry at all, and an empty
// Success means any 2xx.
type Inbox struct {
	Name        string
	Forward     string // absolute URL
	Method      string // default POST
	Timeout     time.Duration
	Retry       []time.Duration // waits after each failed attempt
	Success     []int           // statuses that count as delivered; empty: any 2xx
	Concurrency int
	Ordered     bool
}

// Defaults for the zero values of Inbox. The handler's options document and
// apply these same values.
const (
	DefaultMethod      = http.MethodPost
	DefaultTimeout     = 30 * time.Second
	DefaultConcurrency = 4
)

// The circuit breaker opens after defaultBreakerThreshold failures in a
// row. It first holds back for defaultBreakerCooldown; each failed probe
// doubles that, up to defaultBreakerMaxCooldown. The cap bounds how long an
// application back from a long outage waits for its backlog, while a dead
// one still sees only one request a minute.
const (
	defaultBreakerThreshold   = 5
	defaultBreakerCooldown    = 5 * time.Second
	defaultBreakerMaxCooldown = time.Minute
)

// Hooks let the caller observe delivery (metrics, Caddy events). Any may be
// nil. They are called from a delivery goroutine, after the attempt is
// recorded (with others of its inbox, in turn), so they must not block for
// long. The event they get is the one the record stored (without its
// request).
type Hooks struct {
	Attempt   func(inbox string, e *store.Event, a store.Attempt)
	Delivered func(inbox string, e *store.Event)
	Dead      func(inbox string, e *store.Event)
	Breaker   func(inbox string, open bool)
}

// BreakerState is one inbox's circuit breaker, for the admin API.
type BreakerState struct {
	State    string // "closed", "open", "half_open"
	Since    time.Time
	Failures int // consecutive failures counted toward opening
}

// Service delivers the events of every configured inbox. It is meant to
// live for the whole process, across config reloads: Configure swaps the
// settings in, Stop ends it.
type Service struct {
	queue  Queue
	hooks  Hooks
	logger atomic.Pointer[zap.Logger]

	transport *http.Transport
	client    *retryablehttp.Client

	// ctx is the parent of every attempt; cancelled by Stop once its grace
	// period is over.
	ctx    context.Context
	cancel context.CancelFunc

	// breaker tuning; tests shorten them before the first Configure.
	breakerThreshold   int
	breakerCooldown    time.Duration
	breakerMaxCooldown time.Duration
	// recordWait: how long a record waits at most for others to share its
	// commit (record.go).
	recordWait time.Duration

	mu       sync.Mutex
	inboxes  map[string]*inbox
	retired  map[string]*inbox // once configured, no longer: kept for their attempts in flight
	stopped  bool
	dispatch sync.WaitGroup // dispatcher goroutines
	attempts sync.WaitGroup // attempts in flight, across all inboxes
	running  atomic.Int64   // the same, counted for the logs
	workers  *workers       // the goroutines the attempts run on
}

// New returns a Service that delivers what q holds. No inbox is delivered
// before Configure.
func New(q Queue, logger *zap.Logger, hooks Hooks) *Service {
	s := &Service{
		queue:              q,
		hooks:              hooks,
		inboxes:            make(map[string]*inbox),
		retired:            make(map[string]*inbox),
		breakerThreshold:   defaultBreakerThreshold,
		breakerCooldown:    defaultBreakerCooldown,
		breakerMaxCooldown: defaultBreakerMaxCooldown,
		recordWait:         defaultRecordWait,
	}
	s.SetLogger(logger)
	s.transport = newTransport()
	s.client = newClient(s.transport)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.workers = newWorkers()
	return s
}

// SetLogger makes l the logger of everything that follows; the active Caddy
// config's logger changes on reload and the old one's writers may be closed.
func (s *Service) SetLogger(l *zap.Logger) {
	if l == nil {
		l = zap.NewNop()
	}
	s.logger.Store(l)
}

func (s *Service) log() *zap.Logger { return s.logger.Load() }

// Configure makes inboxes the set being delivered. It may be called any
// number of times: an inbox already running gets the new settings (its next
// attempt uses them) and keeps its one dispatcher, a new inbox gets a
// dispatcher, and an inbox no longer listed stops being claimed (its events
// stay stored; attempts in flight finish).
func (s *Service) Configure(inboxes []Inbox) {
	// Hooks run after the lock is released: they may call back (Breakers).
	var reset []string
	defer func() {
		for _, name := range reset {
			if h := s.hooks.Breaker; h != nil {
				h(name, false)
			}
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		s.log().Warn("delivery is stopped; configuration ignored")
		return
	}
	seen := make(map[string]bool, len(inboxes))
	for _, cfg := range inboxes {
		seen[cfg.Name] = true
		set, err := newSettings(cfg)
		if c, ok := s.queue.(concurrencyBound); ok {
			c.Configure(cfg.Name, set.Concurrency)
		}
		if err != nil {
			// The glue validates the URL at provisioning; should one slip
			// through, the inbox's events stay pending rather than fail.
			s.log().Error("inbox not delivered: invalid forward URL",
				zap.String("inbox", cfg.Name), zap.Error(err))
		}
		if in, ok := s.inboxes[cfg.Name]; ok {
			if in.settings.Load().Forward != set.Forward && in.breaker.reset(time.Now()) {
				s.log().Info("forward URL changed; circuit breaker closed", zap.String("inbox", cfg.Name))
				reset = append(reset, cfg.Name)
			}
			in.setSettings(set)
			continue
		}
		in, ok := s.retired[cfg.Name]
		if ok {
			// Configured again: the same state, so that the attempts still
			// in flight from before count toward its concurrency, once its
			// previous dispatcher is gone (it is only ever one select or
			// one claim away from returning).
			delete(s.retired, cfg.Name)
			<-in.ran
			if in.settings.Load().Forward != set.Forward && in.breaker.reset(time.Now()) {
				reset = append(reset, cfg.Name)
			}
			in.setSettings(set)
		} else {
			in = newInbox(s, cfg.Name, set)
		}
		s.inboxes[cfg.Name] = in
		s.startDispatcher(in)
	}
	for name, in := range s.inboxes {
		if !seen[name] {
			close(in.quit)
			delete(s.inboxes, name)
			s.retired[name] = in
		}
	}
}

// startDispatcher runs in's dispatcher until in.quit is closed.
func (s *Service) startDispatcher(in *inbox) {
	quit, ran := make(chan struct{}), make(chan struct{})
	in.quit, in.ran = quit, ran
	in.mu.Lock()
	in.gone = false
	in.mu.Unlock()
	s.dispatch.Add(1)
	go func() {
		defer s.dispatch.Done()
		defer close(ran)
		in.run(quit)
	}()
}

// Stop ends delivery. It stops claiming at once, then waits for the attempts
// in flight until ctx is done; what is still in flight then is cancelled and
// released to the store, to be delivered again later. When Stop returns, the
// queue is no longer used. Configure after Stop does nothing.
func (s *Service) Stop(ctx context.Context) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	for name, in := range s.inboxes {
		close(in.quit)
		delete(s.inboxes, name)
	}
	s.mu.Unlock()

	// After the dispatchers are gone no attempt can start, so the wait
	// below cannot miss one.
	s.dispatch.Wait()
	done := make(chan struct{})
	go func() {
		s.attempts.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.log().Warn("stopping with deliveries in flight; they will be redelivered",
			zap.Int64("in_flight", s.running.Load()))
		s.cancel()
		// Cancelled attempts only release their lease, which is local and
		// quick; the store must not be used after Stop returns.
		<-done
	}
	s.cancel()
	s.workers.stop()
	s.transport.CloseIdleConnections()
}

// Breakers reports the circuit breaker of every configured inbox.
func (s *Service) Breakers() map[string]BreakerState {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]BreakerState, len(s.inboxes))
	for name, in := range s.inboxes {
		m[name] = in.breaker.state()
	}
	return m
}

// Probe ends the cooldown of the inbox's open circuit breaker: the
// dispatcher probes the application at once with one event (half open)
// rather than at the end of the cooldown. A replay calls it, since the user
// replays when they believe the application is back. A closed or half-open
// breaker, or an inbox not configured, is left as it is.
func (s *Service) Probe(inbox string) {
	s.mu.Lock()
	in, ok := s.inboxes[inbox]
	s.mu.Unlock()
	if !ok || !in.breaker.endCooldown(time.Now()) {
		return
	}
	s.log().Info("circuit breaker cooldown cut short; probing now", zap.String("inbox", inbox))
	// The dispatcher looks at the whole state when woken, the breaker too.
	signal(in.changed)
}

// settings is an Inbox with its defaults applied and its URL parsed.
type settings struct {
	Inbox
	forward *url.URL // nil when Forward is invalid: nothing is claimed
	// forwardURL is forward as a string: the URL of an event without a query.
	forwardURL string
	success    map[int]bool
}

func newSettings(cfg Inbox) (*settings, error) {
	set := &settings{Inbox: cfg}
	set.Retry = slices.Clone(cfg.Retry) // the caller's slice may be reused
	if set.Method == "" {
		set.Method = DefaultMethod
	}
	if set.Timeout <= 0 {
		set.Timeout = DefaultTimeout
	}
	if set.Concurrency <= 0 {
		set.Concurrency = DefaultConcurrency
	}
	if set.Ordered {
		set.Concurrency = 1
	}
	if len(set.Success) > 0 {
		set.success = make(map[int]bool, len(set.Success))
		for _, code := range set.Success {
			set.success[code] = true
		}
	}
	u, err := url.Parse(cfg.Forward)
	if err != nil {
		// The url.Error would quote the URL, credentials and all.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return set, fmt.Errorf("forward URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return set, fmt.Errorf("forward URL %s: %w", redact(u), errNotAbsolute)
	}
	set.forward, set.forwardURL = u, u.String()
	return set, nil
}

// delivered tells whether status counts as delivered.
func (set *settings) delivered(status int) bool {
	if set.success != nil {
		return set.success[status]
	}
	return status >= 200 && status <= 299
}
