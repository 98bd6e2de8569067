package store

// API CONTRACT (stub, to be replaced by the implementation): the method set
// below is what caddymodule and deliver call. Keep the signatures.

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
)

// ErrNotFound is returned for an unknown event id.
var ErrNotFound = errors.New("event not found")

// Options tune a DB.
type Options struct {
	// Retention: how long delivered and dead events stay in history.
	Retention time.Duration
	// Logger receives Badger's own log lines and the store's.
	Logger *zap.Logger
}

// Query selects events for List.
type Query struct {
	Inbox  string
	State  State
	Since  time.Time
	Until  time.Time
	Limit  int
	Cursor string
}

// InboxStats describes one inbox's stored events.
type InboxStats struct {
	Inbox         string
	Counts        map[State]int
	OldestPending time.Time
}

type DB struct{}

func Open(dir string, opts Options) (*DB, error) { return nil, errors.New("todo") }
func (db *DB) Close() error                      { return nil }
func (db *DB) SetRetention(d time.Duration)      {}
func (db *DB) Enqueue(ctx context.Context, e *Event, dedupeWindow time.Duration) (id string, duplicate bool, err error) {
	return "", false, errors.New("todo")
}
func (db *DB) Wake(inbox string) <-chan struct{} { return nil }
func (db *DB) Claim(inbox string, now time.Time, ordered bool) (*Event, time.Time, error) {
	return nil, time.Time{}, nil
}
func (db *DB) Record(id string, a Attempt, next Next) error                      { return nil }
func (db *DB) Release(id string)                                                 {}
func (db *DB) Pending(inbox string) int                                          { return 0 }
func (db *DB) Get(id string) (*Event, []Attempt, error)                          { return nil, nil, ErrNotFound }
func (db *DB) List(q Query) ([]*Event, string, error)                            { return nil, "", nil }
func (db *DB) Inboxes() ([]InboxStats, error)                                    { return nil, nil }
func (db *DB) Replay(id string, now time.Time) error                             { return nil }
func (db *DB) ReplayInbox(inbox string, state State, now time.Time) (int, error) { return 0, nil }
func (db *DB) Delete(id string) error                                            { return nil }
