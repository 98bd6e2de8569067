package store

import (
	"context"
	"time"
)

// Store is what every store keeps (SPEC.md, "Stores"): the durable queue of
// each inbox, its retry schedule, the dedupe keys and the history. *DB is
// the one-node store on Badger; a store shared by several nodes keeps the
// same promises behind the same methods, with the same errors (ErrNotFound,
// ErrInboxFull, ErrNoSpace, ErrBadCursor).
type Store interface {
	// Enqueue stores e durably before it returns: once it returns nil,
	// the event survives a crash. See (*DB).Enqueue.
	Enqueue(ctx context.Context, e *Event, limits Limits) (id string, duplicate bool, err error)

	// The delivery state machine. The store owns it: leases and their
	// exclusivity (one attempt at an event at a time, one event of an
	// ordered inbox at a time), the state an attempt's record leads to,
	// and the wake-ups. A lease ends with Record or Release.
	Wake(inbox string) <-chan struct{}
	Lease(inbox string, now time.Time, ordered bool) (id string, next time.Time, err error)
	Load(id string, now time.Time) (*Event, error)
	Record(id string, a Attempt, next Next) (*Event, error)
	Release(id string)

	// History and operations, for the admin API, the command line and the
	// metrics.
	Get(id string) (*Event, []Attempt, error)
	List(q Query) ([]*Event, string, error)
	Inboxes() ([]InboxStats, error)
	Replay(id string, now time.Time) error
	ReplayInbox(inbox string, state State, now time.Time) (int, error)
	Delete(id string) error

	// SetRetention changes how long finished events are kept.
	SetRetention(d time.Duration)
	// Close stops the store's work and releases what it holds.
	Close() error
}

var _ Store = (*DB)(nil)

// Check returns the error step must fail with, or nil: a store outside this
// package (internal/natsstore) calls it at the steps of its own writes that
// the step names.
func (f *Faults) Check(step Step) error { return f.check(step) }
