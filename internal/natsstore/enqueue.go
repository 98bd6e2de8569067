package natsstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookinbox/hookinbox/internal/store"
)

// maxDedupeKey is the longest sender key kept as it is (as the Badger store).
const maxDedupeKey = 200

// errStoring: a copy of the same event is being stored by another request
// right now; the sender should try again (its copy is then a duplicate, or
// stored if the other failed).
var errStoring = errors.New("a copy of this event is being stored; try again")

// Enqueue stores e as pending and due at once, and returns once JetStream
// has acknowledged its request, its state and its due message: after a nil
// error the event survives the loss of a minority of the servers. Any
// failure on the way undoes what was written (as far as NATS answers) and
// returns an error, within the store's timeout.
func (s *Store) Enqueue(ctx context.Context, e *store.Event, limits store.Limits) (string, bool, error) {
	if e.Inbox == "" || strings.IndexByte(e.Inbox, 0) >= 0 {
		return "", false, fmt.Errorf("enqueueing: invalid inbox name %q", e.Inbox)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	if err := s.faults.Check(store.StepJournalWrite); err != nil {
		return "", false, fmt.Errorf("enqueueing event in inbox %s: %w", e.Inbox, err)
	}
	if len(e.DedupeKey) > maxDedupeKey {
		h := sha256.Sum256([]byte(e.DedupeKey))
		e.DedupeKey = "sha256:" + hex.EncodeToString(h[:])
	}
	now := time.Now()
	if e.ReceivedAt.IsZero() {
		e.ReceivedAt = now
	}
	e.ID = s.ids.Next(e.ReceivedAt)
	e.State, e.Attempts, e.NextAttemptAt, e.FinishedAt = store.Pending, 0, now, time.Time{}

	var undo []func(ctx context.Context)
	fail := func(err error) (string, bool, error) {
		ctx, cancel := s.op()
		defer cancel()
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i](ctx)
		}
		if errors.Is(err, store.ErrInboxFull) {
			return "", false, err
		}
		return "", false, fmt.Errorf("enqueueing event in inbox %s: %w", e.Inbox, err)
	}

	if e.DedupeKey != "" && limits.Dedupe > 0 {
		dk := dedupeKey(e.Inbox, e.DedupeKey)
		prev, err := s.claimDedupe(ctx, dk, e.ID, limits.Dedupe)
		if err != nil {
			return fail(err)
		}
		if prev != "" {
			return prev, true, nil
		}
		undo = append(undo, func(ctx context.Context) { s.dropDedupe(ctx, dk, e.ID) })
	}
	if err := s.addPending(ctx, e.Inbox, +1, limits.MaxPending); err != nil {
		return fail(err)
	}
	undo = append(undo, func(ctx context.Context) { s.addPending(ctx, e.Inbox, -1, 0) })

	header, err := json.Marshal(e.Header)
	if err != nil {
		return fail(err)
	}
	ack, err := s.js.PublishMsg(ctx, &nats.Msg{
		Subject: s.prefix + ".req." + token(e.Inbox),
		Header:  nats.Header{hdrID: {e.ID}, hdrHeader: {string(header)}},
		Data:    e.Body,
	})
	if err != nil {
		return fail(err)
	}
	undo = append(undo, func(ctx context.Context) { s.requests.DeleteMsg(ctx, ack.Sequence) })

	r := &record{
		ID: e.ID, Inbox: e.Inbox, ReceivedAt: e.ReceivedAt, Method: e.Method, Path: e.Path,
		RawQuery: e.RawQuery, Verified: e.Verified, DedupeKey: e.DedupeKey,
		State: store.Pending, NextAttemptAt: now, Request: ack.Sequence, Gen: 1,
	}
	v, err := json.Marshal(r)
	if err != nil {
		return fail(err)
	}
	if _, err := s.events.Create(ctx, e.ID, v); err != nil {
		return fail(err)
	}
	undo = append(undo, func(ctx context.Context) { s.events.Purge(ctx, e.ID) })
	if err := s.publishDue(ctx, e.Inbox, e.ID, r.Gen, time.Time{}); err != nil {
		return fail(err)
	}
	return e.ID, false, nil
}

func dedupeKey(inbox, key string) string {
	h := sha256.Sum256([]byte(inbox + "\x00" + key))
	return hex.EncodeToString(h[:])
}

// claimDedupe makes the dedupe key dk name id for window, or returns the
// event it already names. A key naming an event that was never stored (its
// enqueue failed after the key was made) is taken over once it is older
// than an enqueue may take; younger, its enqueue may still be under way.
func (s *Store) claimDedupe(ctx context.Context, dk, id string, window time.Duration) (string, error) {
	for range maxConflicts {
		_, err := s.dedupe.Create(ctx, dk, []byte(id), jetstream.KeyTTL(window))
		if err == nil {
			return "", nil
		}
		if !conflict(err) {
			return "", err
		}
		entry, err := s.dedupe.Get(ctx, dk)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // expired meanwhile
		}
		if err != nil {
			return "", err
		}
		prev := string(entry.Value())
		if time.Since(entry.Created()) >= window {
			// JetStream's TTLs have one-second steps: the window is checked here.
			s.dedupe.Delete(ctx, dk, jetstream.LastRevision(entry.Revision()))
			continue
		}
		if _, _, err := s.getRecord(ctx, prev); err == nil {
			return prev, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
		if time.Since(entry.Created()) < s.opts.Timeout {
			return "", errStoring
		}
		s.dedupe.Delete(ctx, dk, jetstream.LastRevision(entry.Revision()))
	}
	return "", errStoring
}

// dropDedupe deletes dedupe key dk if it still names id.
func (s *Store) dropDedupe(ctx context.Context, dk, id string) {
	entry, err := s.dedupe.Get(ctx, dk)
	if err == nil && string(entry.Value()) == id {
		s.dedupe.Delete(ctx, dk, jetstream.LastRevision(entry.Revision()))
	}
}

// addPending adds delta to inbox's pending count; with max > 0 and delta
// > 0 it refuses with store.ErrInboxFull at max. The count is kept next to
// the events, not with them: a node that dies between the two leaves it
// off by one (a recount from the events bucket is the cure; not done yet).
//
// Every enqueue and every finished event changes the count, a
// compare-and-set on one key per inbox: one at a time, that would be one
// quorum round trip per event for the whole inbox. So the changes a node
// asks for while one is being written wait and are written together, as
// one compare-and-set (a group commit), each checked against max in turn.
// A conflict with another node is tried again until the store's timeout.
func (s *Store) addPending(ctx context.Context, inbox string, delta, max int) error {
	req := &countChange{delta: delta, max: max, done: make(chan error, 1)}
	c := s.pendingCount(inbox)
	c.mu.Lock()
	c.waiting = append(c.waiting, req)
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go s.writeCounts(inbox, c)
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		// It may still be written: Enqueue's undo takes it back.
		return fmt.Errorf("counting pending events of inbox %s: %w", inbox, ctx.Err())
	}
}

// pendingCounter gathers the changes of one inbox's pending count that
// wait for the one being written.
type pendingCounter struct {
	mu      sync.Mutex
	waiting []*countChange
	writing bool
}

type countChange struct {
	delta, max int
	done       chan error
}

func (s *Store) pendingCount(inbox string) *pendingCounter {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counters[inbox]
	if c == nil {
		c = new(pendingCounter)
		s.counters[inbox] = c
	}
	return c
}

// writeCounts writes the waiting changes, a batch at a time, until none
// waits.
func (s *Store) writeCounts(inbox string, c *pendingCounter) {
	for {
		c.mu.Lock()
		batch := c.waiting
		c.waiting = nil
		if len(batch) == 0 {
			c.writing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		results := s.writeCountBatch(inbox, batch)
		for i, req := range batch {
			req.done <- results[i]
		}
	}
}

// writeCountBatch applies batch to the count in one compare-and-set and
// returns each change's result.
func (s *Store) writeCountBatch(inbox string, batch []*countChange) []error {
	ctx, cancel := s.op()
	defer cancel()
	key := token(inbox)
	results := make([]error, len(batch))
	for {
		entry, err := s.counts.Get(ctx, key)
		n, rev := 0, uint64(0)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return fill(results, fmt.Errorf("counting pending events of inbox %s: %w", inbox, err))
		default:
			n, _ = strconv.Atoi(string(entry.Value()))
			rev = entry.Revision()
		}
		sum := 0
		for i, req := range batch {
			results[i] = nil
			if req.delta > 0 && req.max > 0 && n+sum+req.delta > req.max {
				results[i] = store.ErrInboxFull
				continue
			}
			sum += req.delta
		}
		v := []byte(strconv.Itoa(max(n+sum, 0)))
		if rev == 0 {
			_, err = s.counts.Create(ctx, key, v)
		} else {
			_, err = s.counts.Update(ctx, key, v, rev)
		}
		switch {
		case err == nil:
			return results
		case conflict(err) && ctx.Err() == nil:
			time.Sleep(time.Duration(rand.N(int64(2 * time.Millisecond))))
		default:
			return fill(results, fmt.Errorf("counting pending events of inbox %s: %w", inbox, err))
		}
	}
}

func fill(results []error, err error) []error {
	for i := range results {
		results[i] = err
	}
	return results
}

// publishDue publishes event id's due message of generation gen: at once,
// or as a schedule for at if it is later than the next second.
func (s *Store) publishDue(ctx context.Context, inbox, id string, gen uint64, at time.Time) error {
	h := nats.Header{hdrID: {id}, hdrGen: {strconv.FormatUint(gen, 10)}}
	target := s.dueSubject(inbox)
	if !at.After(time.Now().Add(time.Second)) {
		_, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: target, Header: h})
		return err
	}
	// A schedule fires on a whole second: the next one, never early.
	fire := at.Truncate(time.Second)
	if fire.Before(at) {
		fire = fire.Add(time.Second)
	}
	_, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: s.schedSubject(inbox, id, at), Header: h},
		jetstream.WithScheduleAt(fire), jetstream.WithScheduleTarget(target))
	return err
}

func (s *Store) schedSubject(inbox, id string, at time.Time) string {
	return s.schedPrefix(inbox) + id + "." + strconv.FormatInt(at.UnixNano(), 10)
}

// purgeSchedule cancels event id's waiting retry, if any.
func (s *Store) purgeSchedule(ctx context.Context, inbox, id string) error {
	return s.due.Purge(ctx, jetstream.WithPurgeSubject(s.schedPrefix(inbox)+id+".*"))
}
