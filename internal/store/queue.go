package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/oklog/ulid/v2"
)

// ErrInboxFull is returned by Enqueue when the inbox holds Limits.MaxPending
// events waiting for delivery.
var ErrInboxFull = errors.New("the inbox holds its maximum of pending events")

// Limits are an inbox's rules for new events.
type Limits struct {
	// Dedupe: a second event with the same DedupeKey within this long is
	// not stored. Zero: no dedupe.
	Dedupe time.Duration
	// MaxPending: with this many events pending (or being delivered), a new
	// one is refused with ErrInboxFull. Zero: no cap.
	MaxPending int
}

// maxDedupeKey is the longest sender key kept as it is; a longer one is
// kept as its hash. Sender ids are short; a long one is a mistake or an
// attack, and would be returned by every listing.
const maxDedupeKey = 200

// boundDedupeKey returns k, or its hash if k is longer than maxDedupeKey.
func boundDedupeKey(k string) string {
	if len(k) <= maxDedupeKey {
		return k
	}
	h := sha256.Sum256([]byte(k))
	return "sha256:" + hex.EncodeToString(h[:])
}

// Enqueue stores e durably (synced to disk before it returns) as pending, due at
// once, assigning e.ID (a ULID: ids sort by arrival) and ReceivedAt if zero.
// If e.DedupeKey != "" and an event with the same (inbox, key) was stored
// within limits.Dedupe, it stores nothing and returns that event's id
// with duplicate=true. Two concurrent copies store one: the check runs in the
// writer, inside the transaction that would store the event, and so does
// the MaxPending cap (a duplicate is answered even when the inbox is full).
// e's header and body are encoded at once; Enqueue keeps no reference to
// them.
func (db *DB) Enqueue(ctx context.Context, e *Event, limits Limits) (id string, duplicate bool, err error) {
	if e.Inbox == "" || strings.IndexByte(e.Inbox, 0) >= 0 {
		return "", false, fmt.Errorf("enqueueing: invalid inbox name %q", e.Inbox)
	}
	dedupeWindow := limits.Dedupe
	e.DedupeKey = boundDedupeKey(e.DedupeKey)
	now := time.Now()
	if e.ReceivedAt.IsZero() {
		e.ReceivedAt = now
	}
	e.ID = db.ids.Next(e.ReceivedAt)
	e.State, e.Attempts, e.NextAttemptAt, e.FinishedAt = Pending, 0, now, time.Time{}
	meta := encodeMeta(e)
	buf := requestBuffers.Get().(*[]byte)
	request := encodeRequest((*buf)[:0], e)
	requestCRC := crc32.Checksum(request, castagnoli)
	dedupe := e.DedupeKey != "" && dedupeWindow > 0
	var dk []byte
	if dedupe {
		dk = dedupeKey(e.Inbox, e.DedupeKey)
	}
	var dupID string
	o := newOp(len(meta)+len(request)+256, func(b *batch) error {
		dupID = ""
		if dedupe && db.dedupe.mayHold(dk) {
			stored, prev, err := readDedupe(b.txn, dk)
			if err != nil {
				return err
			}
			// Badger's TTL has one-second steps: the window is checked here.
			if prev != "" && time.Since(stored) < dedupeWindow {
				dupID = prev
				return nil
			}
		}
		if limits.MaxPending > 0 && b.pending(e.Inbox) >= limits.MaxPending {
			return ErrInboxFull
		}
		b.putRequest(e, request, requestCRC)
		setMetaRef(meta, e.request)
		due, state := dueKey(e.Inbox, now, e.ID), stateKey(e.Inbox, Pending, e.ID)
		writes := []struct{ k, v []byte }{
			{metaKey(e.ID), meta},
			{due, meta},
			{state, nil},
		}
		for _, w := range writes {
			if err := b.set(w.k, w.v); err != nil {
				return err
			}
		}
		if dedupe {
			// The TTL only reclaims space; round it up past the window.
			ttl := dedupeWindow + 2*time.Second
			if err := b.setEntry(badger.NewEntry(dk, dedupeValue(time.Now(), e.ID)).WithTTL(ttl)); err != nil {
				return err
			}
			db.dedupe.add(dk)
		}
		b.count(e.Inbox, Pending, +1)
		lowest(b.dueInserts, e.Inbox, dueSuffix(due))
		lowest(b.pendingInserts, e.Inbox, stateSuffix(state))
		b.wakes[e.Inbox] = true
		return nil
	})
	// Once the op is answered the writer has copied the request into the
	// journal record (an enqueue whose caller gave up may still commit).
	o.after = func(error) {
		if cap(request) <= maxPooledRequest {
			*buf = request[:0]
			requestBuffers.Put(buf)
		}
	}
	if err := db.reserveSpace(int64(o.size)); err != nil {
		return "", false, err
	}
	defer db.releaseSpace(int64(o.size))
	if err := db.submit(ctx, o); errors.Is(err, ErrInboxFull) {
		return "", false, err
	} else if err != nil {
		return "", false, fmt.Errorf("enqueueing event in inbox %s: %w", e.Inbox, err)
	}
	if dupID != "" {
		return dupID, true, nil
	}
	return e.ID, false, nil
}

// requestBuffers holds the buffers enqueues encode requests into: a new one
// for each event was a fifth of the bytes ingest allocated. Larger ones
// than maxPooledRequest are left to the garbage collector.
var requestBuffers = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledRequest = 64 << 10

// readDedupe returns when a dedupe key was stored and for which event ("" if absent).
func readDedupe(txn *badger.Txn, k []byte) (time.Time, string, error) {
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return time.Time{}, "", nil
	}
	if err != nil {
		return time.Time{}, "", fmt.Errorf("reading dedupe key: %w", err)
	}
	var stored time.Time
	var id string
	err = item.Value(func(v []byte) error {
		if len(v) != 8+idLen {
			return fmt.Errorf("dedupe entry of %d bytes", len(v))
		}
		stored, id = fromNanos(v[:8]), string(v[8:])
		return nil
	})
	return stored, id, err
}

// Wake returns a channel (capacity 1, never closed) that is signalled
// whenever an event of inbox may have become due: enqueue, replay, retry
// scheduled, lease ended. A signal may be spurious; Claim tells.
func (db *DB) Wake(inbox string) <-chan struct{} {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.wakeChan(inbox)
}

func (db *DB) wakeChan(inbox string) chan struct{} {
	c := db.wakes[inbox]
	if c == nil {
		c = make(chan struct{}, 1)
		db.wakes[inbox] = c
	}
	return c
}

func (db *DB) wake(inbox string) {
	db.mu.Lock()
	c := db.wakeChan(inbox)
	db.mu.Unlock()
	select {
	case c <- struct{}{}:
	default:
	}
}

// Claim leases the next event of inbox due at or before now and reads it
// with its body (Lease, then Load). The lease is in memory only: after a
// crash the event is pending again and is delivered again.
//
// ordered: only the oldest unfinished event of the inbox (arrival order) may
// be claimed, and only while no event of the inbox is leased, so a failing
// head holds the line.
//
// When nothing is claimable it returns nil and when the next event is due,
// or the zero time if there is none (or, ordered, while the head is leased:
// ending the lease wakes the inbox).
func (db *DB) Claim(inbox string, now time.Time, ordered bool) (*Event, time.Time, error) {
	// A lease taken on a stale snapshot (the event was finished meanwhile)
	// is dropped and the scan retried; more than a few rounds means a storm
	// of concurrent records, which the next wake-up will pick up.
	for range 8 {
		id, next, err := db.Lease(inbox, now, ordered)
		if err != nil || id == "" {
			return nil, next, err
		}
		e, err := db.Load(id, now)
		if err != nil {
			db.endLease(id, false, true)
			return nil, time.Time{}, err
		}
		if e != nil {
			return e, time.Time{}, nil
		}
	}
	return nil, time.Time{}, nil
}

// Lease leases the next event of inbox due at or before now, as Claim
// does, and returns its id without reading it; "" and the next due time
// when none is claimable. Load reads it.
func (db *DB) Lease(inbox string, now time.Time, ordered bool) (string, time.Time, error) {
	if ordered {
		return db.findHead(inbox, now)
	}
	return db.findDue(inbox, now)
}

// Load reads leased event id with its body, marked delivering. The lease
// may have been taken on a snapshot older than the Record that finished the
// event: then Load ends the lease and returns nil, nil. On an error the
// lease stays; the caller releases it.
func (db *DB) Load(id string, now time.Time) (*Event, error) {
	db.mu.Lock()
	m := db.carried[id]
	delete(db.carried, id)
	db.mu.Unlock()
	if m != nil && m.request.seq != 0 && !m.NextAttemptAt.After(now) {
		// The scan's snapshot was current when the lease was taken: no
		// read of Badger is needed. A request moved since by a compaction
		// whose segment is gone is read again below, from a fresh meta.
		err := db.readJournalRequest(m)
		if err == nil {
			db.keepLoaded(m)
			m.State = Delivering
			return m, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("loading event %s: reading its request: %w", id, err)
		}
	}
	e, err := db.loadLeased(id, now)
	if err != nil {
		return nil, err
	}
	if e == nil {
		// Finished or moved by a commit the scan did not see: its key at
		// the leased place is gone.
		db.endLease(id, false, false)
		return nil, nil
	}
	return e, nil
}

// keepLoaded keeps the stored meta of leased event e, read on a snapshot
// taken after its lease began, for its Record: a commit that changes it
// later marks the lease stale (applied).
func (db *DB) keepLoaded(e *Event) {
	m := *e
	m.Header, m.Body, m.State = nil, nil, Pending
	db.mu.Lock()
	if _, ok := db.leases[e.ID]; ok && !db.stale[e.ID] {
		db.loaded[e.ID] = &m
	}
	db.mu.Unlock()
}

// aheadMax: due keys a scan reads ahead for the next claims (hint.go). A
// scan costs a Badger iterator over every level; at the default
// concurrency the dispatcher claims one event at a time, and this makes
// most claims a map lookup.
const aheadMax = 32

// findDue leases the first event of inbox due at or before now that is not
// leased: the next one a scan read ahead, or else it scans the due index
// from its hint.
func (db *DB) findDue(inbox string, now time.Time) (string, time.Time, error) {
	h := db.hintFor(db.dueHints, inbox)
	for {
		k, ok := h.nextAhead()
		if !ok {
			break
		}
		if db.lease(k.id, inbox, false) {
			if k.meta != nil {
				db.keepCarried(k.id, k.readTs, k.meta)
			}
			return k.id, time.Time{}, nil
		}
	}
	prefix := duePrefix(inbox)
	from, fromHead := h.beginClaim()
	start := append(bytes.Clone(prefix), from...)
	var head, leased []byte
	var ahead []dueKeyRead
	var found string
	var next time.Time
	err := db.view(func(txn *badger.Txn) error {
		readTs := txn.ReadTs()
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		for it.Seek(start); it.ValidForPrefix(prefix); it.Next() {
			k := it.Item().Key()
			suffix := k[len(prefix):]
			if len(suffix) != 8+idLen {
				continue
			}
			if head == nil {
				head = bytes.Clone(suffix)
			}
			if due := fromNanos(suffix[:8]); due.After(now) {
				if found == "" {
					next = due
				}
				return nil
			}
			id := idSuffix(k)
			if found != "" {
				if !db.isLeased(id) {
					ahead = append(ahead, dueKeyRead{bytes.Clone(suffix), id, carriedMeta(id, it.Item()), readTs})
				}
				if len(ahead) == aheadMax {
					return nil
				}
				continue
			}
			if db.lease(id, inbox, false) {
				found, leased = id, bytes.Clone(suffix)
				if m := carriedMeta(id, it.Item()); m != nil {
					db.keepCarried(id, readTs, m)
				}
			}
		}
		return nil
	})
	if err != nil {
		h.abort()
		return "", time.Time{}, fmt.Errorf("scanning due events of inbox %s: %w", inbox, err)
	}
	h.endClaim(head, fromHead, leased, ahead)
	return found, next, nil
}

// findHead leases the oldest pending event of an ordered inbox if it is due
// and nothing of the inbox is leased.
func (db *DB) findHead(inbox string, now time.Time) (string, time.Time, error) {
	db.mu.Lock()
	busy := db.leased[inbox] > 0
	db.mu.Unlock()
	if busy {
		return "", time.Time{}, nil
	}
	h := db.hintFor(db.pendingHints, inbox)
	prefix := statePrefix(inbox, Pending)
	start := append(bytes.Clone(prefix), h.begin()...)
	var head []byte
	var due time.Time
	var meta *Event
	var readTs uint64
	err := db.view(func(txn *badger.Txn) error {
		readTs = txn.ReadTs()
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		it.Seek(start)
		if !it.ValidForPrefix(prefix) {
			return nil
		}
		head = bytes.Clone(it.Item().Key()[len(prefix):])
		e, err := readMeta(txn, string(head))
		if err != nil {
			return err
		}
		due, meta = e.NextAttemptAt, e
		return nil
	})
	if err != nil {
		h.abort()
		return "", time.Time{}, fmt.Errorf("reading the head of inbox %s: %w", inbox, err)
	}
	h.end(head)
	if head == nil {
		return "", time.Time{}, nil
	}
	if due.After(now) {
		return "", due, nil
	}
	if !db.lease(string(head), inbox, true) {
		return "", time.Time{}, nil
	}
	if meta.State == Pending {
		db.keepCarried(string(head), readTs, meta)
	}
	return string(head), time.Time{}, nil
}

// carriedMeta returns the meta that the due key item of event id holds, or
// nil (a store written before due keys held one has none).
func carriedMeta(id string, item *badger.Item) *Event {
	if item.ValueSize() == 0 {
		return nil
	}
	m := new(Event)
	if item.Value(func(v []byte) error { return decodeMeta(v, m) }) != nil || m.ID != id {
		return nil // Load reads the meta itself, and reports what is wrong
	}
	return m
}

// keepCarried keeps m, the meta of just-leased event id read on the
// snapshot at readTs, unless a commit since may have changed it. The lease
// is taken first: a Record ends its lease only after its commit is in
// db.rewrites, so a lease won on a snapshot older than that Record is seen
// here.
func (db *DB) keepCarried(id string, readTs uint64, m *Event) {
	if db.rewrites.since(id, readTs) {
		return
	}
	db.mu.Lock()
	if _, ok := db.leases[id]; ok {
		db.carried[id] = m
	}
	db.mu.Unlock()
}

// isLeased tells whether id is being delivered.
func (db *DB) isLeased(id string) bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	_, ok := db.leases[id]
	return ok
}

// lease marks id as being delivered; exclusive: none of the inbox may be leased.
func (db *DB) lease(id, inbox string, exclusive bool) bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	if _, ok := db.leases[id]; ok || (exclusive && db.leased[inbox] > 0) {
		return false
	}
	db.leases[id] = inbox
	db.leased[inbox]++
	return true
}

// endLease ends the lease of id, if any, and wakes its inbox if asked.
// stillDue: the event's due key is still where it was leased, so claims
// must look there again.
func (db *DB) endLease(id string, wake, stillDue bool) {
	db.mu.Lock()
	inbox, ok := db.leases[id]
	if ok {
		delete(db.leases, id)
		delete(db.carried, id)
		delete(db.loaded, id)
		delete(db.stale, id)
		delete(db.replays, id)
		if db.leased[inbox]--; db.leased[inbox] <= 0 {
			delete(db.leased, inbox)
		}
	}
	db.mu.Unlock()
	if ok && stillDue {
		db.hintFor(db.dueHints, inbox).forgetClaims()
	}
	if ok && wake {
		db.wake(inbox)
	}
}

// loadLeased reads a just-leased event on a fresh snapshot and checks it is
// still pending and due: the scan's snapshot may predate a Record that
// finished it and ended its lease. Nil, nil: it is not claimable.
func (db *DB) loadLeased(id string, now time.Time) (*Event, error) {
	var e *Event
	err := db.view(func(txn *badger.Txn) error {
		m, err := readMeta(txn, id)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if m.State != Pending || m.NextAttemptAt.After(now) {
			return nil
		}
		if err := db.readRequest(txn, m); err != nil {
			return err
		}
		db.keepLoaded(m)
		m.State = Delivering
		e = m
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading event %s: %w", id, err)
	}
	return e, nil
}

// Record stores attempt a of leased event id, applies next (delivered,
// dead, or pending again at next.RetryAt) and ends the lease. It returns
// the event as stored after the record (without its request). a.N, if
// zero, is the event's attempt count plus one.
//
// An event replayed while its attempt was in flight is pending and due at
// once after the record, whatever next says: the replay asked for one
// more delivery after the one in flight.
//
// When the record cannot be written the lease stays, so that the event is
// not attempted again on a schedule the store never saw: the caller tries
// the record again, or releases the lease. An event deleted meanwhile
// ends the lease and returns ErrNotFound.
func (db *DB) Record(id string, a Attempt, next Next) (*Event, error) {
	if err := db.faults.check(StepRecord); err != nil {
		return nil, fmt.Errorf("recording attempt of event %s: %w", id, err)
	}
	var stored *Event
	o := newOp(recordSize(a), func(b *batch) error {
		var err error
		stored, err = b.recordAttempt(id, a, next)
		return err
	})
	// The lease ends after the commit, so the event is never claimable on a
	// state older than this record.
	o.after = func(err error) {
		switch {
		case err == nil:
			db.endLease(id, true, false)
		case errors.Is(err, ErrNotFound):
			db.endLease(id, false, false)
		}
	}
	if err := db.submit(context.Background(), o); err != nil {
		return nil, fmt.Errorf("recording attempt of event %s: %w", id, err)
	}
	return stored, nil
}

// replayRequested tells whether leased event id was replayed during its
// attempt. Only the writer calls it.
func (db *DB) replayRequested(id string) bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.replays[id]
}

// Release ends a lease with no attempt (a graceful stop): the event stays due.
func (db *DB) Release(id string) { db.endLease(id, true, true) }

// Pending is the number of pending and delivering events of inbox, from memory.
func (db *DB) Pending(inbox string) int {
	db.mu.Lock()
	defer db.mu.Unlock()
	if c := db.counts[inbox]; c != nil {
		return c[stateIndex(Pending)]
	}
	return 0
}

// readMeta reads an event's meta (no body, stored state).
func readMeta(txn *badger.Txn, id string) (*Event, error) {
	item, err := txn.Get(metaKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading event %s: %w", id, err)
	}
	e := new(Event)
	if err := item.Value(func(v []byte) error { return decodeMeta(v, e) }); err != nil {
		return nil, fmt.Errorf("reading event %s: %w", id, err)
	}
	return e, nil
}

// IDSource makes event ids: ULIDs that increase strictly within a
// millisecond, in the order they are made, so that ids sort by arrival
// (the pending index relies on it for arrival order; across the nodes of
// a shared store, to the millisecond). The zero value is ready to use.
type IDSource struct {
	mu      sync.Mutex
	entropy *ulid.MonotonicEntropy
}

// Next returns a new id for an event received at t.
func (s *IDSource) Next(t time.Time) string {
	ms := ulid.Timestamp(t)
	if t.Before(time.Unix(0, 0)) || ms > ulid.MaxTime() {
		ms = ulid.Now()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entropy == nil {
		s.entropy = ulid.Monotonic(rand.Reader, 0)
	}
	id, err := ulid.New(ms, s.entropy)
	if err != nil { // entropy overflow within one millisecond: start afresh
		s.entropy = ulid.Monotonic(rand.Reader, 0)
		id = ulid.MustNew(ms, s.entropy)
	}
	return id.String()
}
