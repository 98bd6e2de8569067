package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/oklog/ulid/v2"
)

// Get returns an event with its body and every attempt, oldest first.
func (db *DB) Get(id string) (*Event, []Attempt, error) {
	var e *Event
	var attempts []Attempt
	err := db.view(func(txn *badger.Txn) error {
		var err error
		if e, err = readMeta(txn, id); err != nil {
			return err
		}
		if err := db.readRequest(txn, e); err != nil {
			return err
		}
		prefix := attemptPrefix(id)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
			var a Attempt
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &a) }); err != nil {
				return fmt.Errorf("reading attempt of event %s: %w", id, err)
			}
			attempts = append(attempts, a)
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("getting event %s: %w", id, err)
	}
	db.showLease(e)
	return e, attempts, nil
}

// showLease turns the stored state of a leased event into Delivering.
func (db *DB) showLease(e *Event) {
	if e.State != Pending {
		return
	}
	db.mu.Lock()
	_, leased := db.leases[e.ID]
	db.mu.Unlock()
	if leased {
		e.State = Delivering
	}
}

// ErrBadCursor is List's answer to a cursor that is not one it handed out:
// the caller's mistake, not the store's.
var ErrBadCursor = errors.New("invalid cursor")

// List returns events newest first (by arrival), without bodies, and the
// cursor of the next page ("" on the last page). Since is inclusive, Until
// exclusive.
func (db *DB) List(q Query) ([]*Event, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	indexState := q.State
	if indexState == Delivering {
		indexState = Pending // leases are in memory: filter the pending events
	}
	if q.State != "" && stateByte(indexState) == 0 {
		return nil, "", fmt.Errorf("listing events: unknown state %q", q.State)
	}
	// Each event is in one state index of its inbox: a listing walks the
	// indexes it needs together, newest first (listIndexes).
	prefixes := db.listIndexes(q.Inbox, indexState)
	// Ids sort by arrival time (to the millisecond), so the time bounds are
	// key bounds; the exact times are checked on the metas.
	start := past
	if !q.Until.IsZero() && !q.Until.Before(time.Unix(0, 0)) {
		var last ulid.ULID
		for i := range last {
			last[i] = 0xff
		}
		if err := last.SetTime(ulid.Timestamp(q.Until)); err == nil {
			start = []byte(last.String())
		}
	}
	if q.Cursor != "" {
		u, err := ulid.ParseStrict(q.Cursor)
		if err != nil {
			return nil, "", ErrBadCursor
		}
		// Ids are stored in upper case; a cursor typed in lower case
		// decodes to the same id and must seek to the same place.
		q.Cursor = u.String()
		if bytes.Compare([]byte(q.Cursor), start) < 0 {
			start = []byte(q.Cursor)
		}
	}
	var sinceMS uint64
	if !q.Since.IsZero() && q.Since.After(time.Unix(0, 0)) {
		sinceMS = ulid.Timestamp(q.Since)
	}

	var events []*Event
	more := false
	err := db.view(func(txn *badger.Txn) error {
		return newestFirst(txn, prefixes, start, func(id string) (bool, error) {
			if id == q.Cursor {
				return false, nil
			}
			u, err := ulid.ParseStrict(id)
			if err != nil {
				return false, nil
			}
			if u.Time() < sinceMS {
				return true, nil
			}
			e, err := readMeta(txn, id)
			if errors.Is(err, ErrNotFound) {
				return false, nil
			}
			if err != nil {
				return true, err
			}
			if !q.Since.IsZero() && e.ReceivedAt.Before(q.Since) ||
				!q.Until.IsZero() && !e.ReceivedAt.Before(q.Until) {
				return false, nil
			}
			db.showLease(e)
			if q.State != "" && e.State != q.State {
				return false, nil
			}
			if len(events) == limit {
				more = true
				return true, nil
			}
			events = append(events, e)
			return false, nil
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("listing events: %w", err)
	}
	if !more {
		return events, "", nil
	}
	return events, events[len(events)-1].ID, nil
}

// listIndexes returns the indexes a listing of inbox (all if "") in state
// (all if "") walks: the inbox's state indexes, or the event table itself
// when neither is given.
func (db *DB) listIndexes(inbox string, state State) [][]byte {
	if inbox == "" && state == "" {
		return [][]byte{key(tableMeta)}
	}
	inboxes := []string{inbox}
	if inbox == "" {
		db.mu.Lock()
		inboxes = slices.Collect(maps.Keys(db.counts))
		db.mu.Unlock()
	}
	states := []State{state}
	if state == "" {
		states = storedStates[:]
	}
	var prefixes [][]byte
	for _, in := range inboxes {
		for _, s := range states {
			prefixes = append(prefixes, statePrefix(in, s))
		}
	}
	return prefixes
}

// newestFirst walks several indexes whose keys end in an event id as one,
// newest id first, from the last id at or before start (past: the newest),
// calling fn with each id until it says stop or fails. An event is in one
// of them at a time, so no id comes twice.
func newestFirst(txn *badger.Txn, prefixes [][]byte, start []byte, fn func(id string) (stop bool, err error)) error {
	its := make([]*badger.Iterator, len(prefixes))
	for i, p := range prefixes {
		its[i] = txn.NewIterator(badger.IteratorOptions{Prefix: p, Reverse: true, PrefetchValues: false})
		defer its[i].Close()
		its[i].Seek(append(bytes.Clone(p), start...))
	}
	for {
		next, id := -1, ""
		for i, it := range its {
			if !it.ValidForPrefix(prefixes[i]) {
				continue
			}
			if k := idSuffix(it.Item().Key()); next < 0 || k > id {
				next, id = i, k
			}
		}
		if next < 0 {
			return nil
		}
		its[next].Next()
		if stop, err := fn(id); stop || err != nil {
			return err
		}
	}
}

// Inboxes returns each inbox's counts by state and its oldest pending event's
// arrival time, sorted by inbox name. Counts come from memory; the oldest
// pending event is one seek per inbox.
func (db *DB) Inboxes() ([]InboxStats, error) {
	db.mu.Lock()
	stats := make([]InboxStats, 0, len(db.counts))
	for inbox, c := range db.counts {
		leased := db.leased[inbox]
		stats = append(stats, InboxStats{
			Inbox: inbox,
			Counts: map[State]int{
				Pending:    max(c[stateIndex(Pending)]-leased, 0),
				Delivering: leased,
				Delivered:  c[stateIndex(Delivered)],
				Dead:       c[stateIndex(Dead)],
			},
		})
	}
	db.mu.Unlock()
	slices.SortFunc(stats, func(a, b InboxStats) int {
		if a.Inbox < b.Inbox {
			return -1
		}
		if a.Inbox > b.Inbox {
			return 1
		}
		return 0
	})
	err := db.view(func(txn *badger.Txn) error {
		for i := range stats {
			s := &stats[i]
			if s.Counts[Pending]+s.Counts[Delivering] == 0 {
				continue
			}
			prefix := statePrefix(s.Inbox, Pending)
			start := append(bytes.Clone(prefix), db.hintFor(db.pendingHints, s.Inbox).peek()...)
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
			it.Seek(start)
			var id string
			if it.ValidForPrefix(prefix) {
				id = idSuffix(it.Item().Key())
			}
			it.Close()
			if id == "" {
				continue
			}
			e, err := readMeta(txn, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			s.OldestPending = e.ReceivedAt
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading inbox stats: %w", err)
	}
	return stats, nil
}
