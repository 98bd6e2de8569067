package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// A Recording is one attempt for RecordAll to store, and what became of it.
type Recording struct {
	ID      string
	Attempt Attempt
	Next    Next

	// Set by RecordAll once the commit is synced: the event as stored
	// (without its request), or Err: ErrNotFound for an event deleted
	// while in flight, whose lease has ended.
	Stored *Event
	Err    error
}

// RecordAll stores the attempts of several leased events in one commit,
// each as Record would, and ends their leases. A delivery at a small
// concurrency has only a few attempts to record at a time: one commit
// for them all costs one fdatasync rather than one each.
//
// It returns an error when the commit fails: then nothing is recorded and
// every lease stays, as with a failed Record.
func (db *DB) RecordAll(rs []Recording) error {
	if err := db.faults.check(StepRecord); err != nil {
		return fmt.Errorf("recording %d attempts: %w", len(rs), err)
	}
	size := 0
	for i := range rs {
		size += recordSize(rs[i].Attempt)
	}
	// The results go to rs only once committed: apply may run more than
	// once, and a failed commit records nothing.
	stored := make([]*Event, len(rs))
	errs := make([]error, len(rs))
	o := newOp(size, func(b *batch) error {
		for i := range rs {
			r := &rs[i]
			before := b.writes
			stored[i], errs[i] = b.recordAttempt(r.ID, r.Attempt, r.Next)
			if errs[i] == nil {
				continue
			}
			if errors.Is(errs[i], ErrNotFound) && b.writes == before {
				continue // deleted while in flight: the others are recorded
			}
			return errs[i]
		}
		return nil
	})
	o.after = func(err error) {
		if err != nil {
			return
		}
		// Ended without a wake each: once per inbox is enough.
		var inboxes []string
		for i := range rs {
			db.endLease(rs[i].ID, false, false)
			if e := stored[i]; errs[i] == nil && !slices.Contains(inboxes, e.Inbox) {
				inboxes = append(inboxes, e.Inbox)
			}
		}
		for _, inbox := range inboxes {
			db.wake(inbox)
		}
	}
	if err := db.submit(context.Background(), o); err != nil {
		return fmt.Errorf("recording %d attempts: %w", len(rs), err)
	}
	for i := range rs {
		rs[i].Stored, rs[i].Err = stored[i], errs[i]
	}
	return nil
}

// recordSize estimates the bytes the record of a writes.
func recordSize(a Attempt) int { return 2048 + len(a.Response) }

// recordAttempt writes attempt a of leased event id into the batch and applies
// next, as Record describes; it returns the event as it will be stored.
func (b *batch) recordAttempt(id string, a Attempt, next Next) (*Event, error) {
	e := b.leasedMeta(id)
	if e == nil {
		var err error
		if e, err = b.getMeta(id); err != nil {
			return nil, err
		}
	}
	if a.N <= 0 {
		a.N = e.Attempts + 1
	}
	v, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("encoding attempt: %w", err)
	}
	if err := b.set(attemptKey(id, a.N), v); err != nil {
		return nil, err
	}
	e.Attempts = max(e.Attempts, a.N)
	now := time.Now()
	switch {
	case b.db.replayRequested(id):
		err = b.replay(e, now)
	case next.Delivered:
		err = b.transition(e, Delivered, time.Time{}, now)
	case next.Dead:
		err = b.transition(e, Dead, time.Time{}, now)
	default:
		due := next.RetryAt
		if due.IsZero() {
			due = now
		}
		err = b.transition(e, Pending, due, time.Time{})
	}
	return e, err
}
