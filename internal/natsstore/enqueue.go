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
	"github.com/nats-io/nuid"

	"github.com/hookinbox/hookinbox/internal/store"
)

// maxDedupeKey is the longest sender key kept as it is (as the Badger store).
const maxDedupeKey = 200

// Enqueue stores e as pending and due at once, and returns once JetStream
// has acknowledged its dedupe key, request and state (one atomic batch) and
// its due message: after a nil error the event survives the loss of a
// minority of the servers. Any failure on the way undoes what was written
// (as far as NATS answers) and returns an error, within the store's timeout.
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

	dk := ""
	if e.DedupeKey != "" && limits.Dedupe > 0 {
		dk = dedupeKey(e.Inbox, e.DedupeKey)
	}
	if err := s.addPending(ctx, e.Inbox, +1, limits.MaxPending); err != nil {
		// A full inbox still answers a duplicate of a stored event as such.
		if prev, _, _ := s.dedupeEntry(ctx, dk, limits.Dedupe); prev != "" {
			return prev, true, nil
		}
		return fail(err)
	}
	undo = append(undo, func(ctx context.Context) { s.addPending(ctx, e.Inbox, -1, 0) })

	header, err := json.Marshal(e.Header)
	if err != nil {
		return fail(err)
	}
	state, err := json.Marshal(&record{
		ID: e.ID, Inbox: e.Inbox, ReceivedAt: e.ReceivedAt, Method: e.Method, Path: e.Path,
		RawQuery: e.RawQuery, Verified: e.Verified, DedupeKey: e.DedupeKey,
		State: store.Pending, NextAttemptAt: now, Gen: 1,
	})
	if err != nil {
		return fail(err)
	}
	prev, err := s.storeEvent(ctx, e, header, state, dk, limits.Dedupe)
	if err != nil {
		undo = append(undo, func(ctx context.Context) { s.unstore(ctx, e.ID, dk) })
		return fail(err)
	}
	if prev != "" {
		// Nothing was written but the count.
		ctx, cancel := s.op()
		defer cancel()
		s.addPending(ctx, e.Inbox, -1, 0)
		return prev, true, nil
	}
	if err := s.publishDue(ctx, e.Inbox, e.ID, 1, time.Time{}); err != nil {
		undo = append(undo, func(ctx context.Context) { s.unstore(ctx, e.ID, dk) })
		return fail(err)
	}
	return e.ID, false, nil
}

func dedupeKey(inbox, key string) string {
	h := sha256.Sum256([]byte(inbox + "\x00" + key))
	return "d." + hex.EncodeToString(h[:])
}

// storeEvent writes event e's dedupe key dk (if any, made only if absent,
// for window), request and state in one atomic batch. When dk already names
// a stored event within the window, nothing is written and that event's id
// is returned.
func (s *Store) storeEvent(ctx context.Context, e *store.Event, header, state []byte, dk string, window time.Duration) (string, error) {
	var dedupeAt uint64 // the sequence the dedupe key must be at: 0, absent
	for range maxConflicts {
		var batch []*nats.Msg
		if dk != "" {
			batch = append(batch, &nats.Msg{Subject: s.eventsSubject + dk, Data: []byte(e.ID), Header: nats.Header{
				jetstream.ExpectedLastSubjSeqHeader: {strconv.FormatUint(dedupeAt, 10)},
				jetstream.MsgTTLHeader:              {ttl(window)},
			}})
		}
		batch = append(batch,
			&nats.Msg{Subject: s.eventsSubject + e.ID + ".req", Data: e.Body, Header: nats.Header{
				hdrID: {e.ID}, hdrHeader: {string(header)},
			}},
			&nats.Msg{Subject: s.eventsSubject + e.ID, Data: state, Header: nats.Header{
				jetstream.ExpectedLastSubjSeqHeader: {"0"},
			}},
		)
		err := s.publishBatch(ctx, batch)
		if err == nil || dk == "" || !wrongLastSequence(err) {
			return "", err
		}
		// The dedupe key is there: its event's, or the marker of one that
		// expired or was deleted.
		prev, at, err := s.dedupeEntry(ctx, dk, window)
		if prev != "" || err != nil {
			return prev, err
		}
		dedupeAt = at
	}
	return "", errConflict
}

// dedupeEntry reads dedupe key dk: the id of the stored event it names
// within window, or else the sequence a new key must be written at (a
// marker's; 0: none). A key past the window or naming an event deleted
// since is removed.
func (s *Store) dedupeEntry(ctx context.Context, dk string, window time.Duration) (id string, at uint64, err error) {
	if dk == "" {
		return "", 0, nil
	}
	m, err := s.eventsStream.GetLastMsgForSubject(ctx, s.eventsSubject+dk)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return "", 0, nil
	case err != nil:
		return "", 0, err
	case marker(m):
		return "", m.Sequence, nil
	}
	// JetStream's TTLs have one-second steps: the window is checked here.
	if time.Since(m.Time) < window {
		_, _, err := s.getRecord(ctx, string(m.Data))
		if err == nil {
			return string(m.Data), 0, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return "", 0, err
		}
	}
	s.eventsStream.DeleteMsg(ctx, m.Sequence)
	return "", 0, nil
}

// ttl is a Nats-TTL of at least JetStream's one second.
func ttl(d time.Duration) string { return max(d, time.Second).Round(time.Second).String() }

// marker tells a key's delete, purge or expiry marker from its value.
func marker(m *jetstream.RawStreamMsg) bool {
	return m.Header.Get("KV-Operation") != "" || m.Header.Get(jetstream.MarkerReasonHeader) != ""
}

// unstore removes what storeEvent may have written of event id (a timeout
// may hide a batch that was written).
func (s *Store) unstore(ctx context.Context, id, dk string) {
	for _, key := range []string{id, id + ".req"} {
		s.eventsStream.Purge(ctx, jetstream.WithPurgeSubject(s.eventsSubject+key))
	}
	s.dropDedupe(ctx, dk, id)
}

// dropDedupe deletes dedupe key dk if it names id.
func (s *Store) dropDedupe(ctx context.Context, dk, id string) {
	if dk == "" {
		return
	}
	if m, err := s.eventsStream.GetLastMsgForSubject(ctx, s.eventsSubject+dk); err == nil && !marker(m) && string(m.Data) == id {
		s.eventsStream.DeleteMsg(ctx, m.Sequence)
	}
}

// publishBatch publishes msgs, all to the events stream, as one atomic
// batch: all of them are stored, or none. JetStream acknowledges the last
// (the commit) only.
func (s *Store) publishBatch(ctx context.Context, msgs []*nats.Msg) error {
	id := nuid.Next()
	for i, m := range msgs {
		m.Header.Set(hdrBatchID, id)
		m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
		if i < len(msgs)-1 {
			if err := s.nc.PublishMsg(m); err != nil {
				return err
			}
			continue
		}
		m.Header.Set(hdrBatchCommit, "1")
		resp, err := s.nc.RequestMsgWithContext(ctx, m)
		if err != nil {
			return err
		}
		var ack struct {
			Error *batchError `json:"error"`
		}
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			return fmt.Errorf("atomic batch: answer %q: %w", resp.Data, err)
		}
		if ack.Error != nil {
			return ack.Error
		}
	}
	return nil
}

// The headers of an atomic batch (nats-server's ADR-50).
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
)

// batchError is JetStream's refusal of an atomic batch.
type batchError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *batchError) Error() string {
	return fmt.Sprintf("atomic batch: %s (%d, error %d)", e.Description, e.Code, e.ErrCode)
}

// wrongLastSequence tells the refusal of a batch whose key was not at the
// expected sequence (10071; 10164 on a replicated stream).
func wrongLastSequence(err error) bool {
	var be *batchError
	return errors.As(err, &be) && (be.ErrCode == 10071 || be.ErrCode == 10164)
}

// addPending adds delta to inbox's pending count; with max > 0 and delta
// > 0 it refuses with store.ErrInboxFull at max. The count is kept next to
// the events, not with them: a node that dies between the two leaves it
// off by one, until the sweep recounts it (recount).
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
		if sum == 0 {
			return results // all refused, or changes that cancel out
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
