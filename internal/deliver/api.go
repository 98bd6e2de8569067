package deliver

// API CONTRACT (stub, to be replaced by the implementation): caddymodule
// calls exactly this. Keep the signatures.

import (
	"context"
	"time"

	"github.com/hookinbox/hookinbox/internal/store"
	"go.uber.org/zap"
)

// Queue is what delivery needs of the store (satisfied by *store.DB).
type Queue interface {
	Wake(inbox string) <-chan struct{}
	Claim(inbox string, now time.Time, ordered bool) (*store.Event, time.Time, error)
	Record(id string, a store.Attempt, next store.Next) error
	Release(id string)
}

// Inbox is one inbox's delivery settings, as configured.
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

// Hooks let the caller observe delivery (metrics, Caddy events). Any may be nil.
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
	Failures int
}

type Service struct{}

func New(q Queue, logger *zap.Logger, hooks Hooks) *Service { return &Service{} }
func (s *Service) Configure(inboxes []Inbox)                {}
func (s *Service) SetLogger(l *zap.Logger)                  {}
func (s *Service) Stop(ctx context.Context)                 {}
func (s *Service) Breakers() map[string]BreakerState        { return nil }
