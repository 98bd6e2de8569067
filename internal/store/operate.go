package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// replayPage is how many events a bulk replay reads and moves per commit:
// ten thousand dead events are never all in memory.
const replayPage = 256

// Replay makes an event pending and due at now, whatever its state; its
// attempts are kept (the next attempt is numbered after them).
func (db *DB) Replay(id string, now time.Time) error {
	o := newOp(2048, func(b *batch) error {
		e, err := b.getMeta(id)
		if err != nil {
			return err
		}
		return b.replay(e, now)
	})
	if err := db.submit(context.Background(), o); err != nil {
		return fmt.Errorf("replaying event %s: %w", id, err)
	}
	return nil
}

// replay makes e pending and due at now, with a fresh retry schedule: a
// user replays once the app is fixed, and an app still failing then gets
// the whole schedule again rather than one attempt. Attempt numbers go on.
//
// An event whose attempt is in flight is marked too: the record of that
// attempt would otherwise finish it, and the replay would be lost. The
// record then makes it pending again (Record).
func (b *batch) replay(e *Event, now time.Time) error {
	b.db.mu.Lock()
	if _, leased := b.db.leases[e.ID]; leased {
		b.db.replays[e.ID] = true
	}
	b.db.mu.Unlock()
	e.ReplayedAfter = e.Attempts
	return b.transition(e, Pending, now, time.Time{})
}

// ReplayInbox replays every event of inbox in state (pending, delivered or
// dead) and returns how many it replayed. It works a page at a time.
func (db *DB) ReplayInbox(inbox string, state State, now time.Time) (int, error) {
	if stateByte(state) == 0 {
		return 0, fmt.Errorf("replaying inbox %s: cannot replay state %q", inbox, state)
	}
	prefix := statePrefix(inbox, state)
	var after []byte // the last id handled: pending events stay in the index
	total := 0
	for {
		ids, err := db.scanIDs(prefix, after, replayPage, nil)
		if err != nil {
			return total, fmt.Errorf("replaying inbox %s: %w", inbox, err)
		}
		if len(ids) == 0 {
			return total, nil
		}
		after = []byte(ids[len(ids)-1])
		n := 0
		o := newOp(len(ids)*2048, func(b *batch) error {
			n = 0
			for _, id := range ids {
				e, err := b.getMeta(id)
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if e.State != state || e.Inbox != inbox {
					continue // moved since the page was read
				}
				if err := b.replay(e, now); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err := db.submit(context.Background(), o); err != nil {
			return total, fmt.Errorf("replaying inbox %s: %w", inbox, err)
		}
		total += n
	}
}

// scanIDs returns up to limit ids of an index in key order, after the key
// suffix after (nil: from the start) and, if stop is set, before it.
func (db *DB) scanIDs(prefix, after []byte, limit int, stop []byte) ([]string, error) {
	var ids []string
	err := db.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		start := append(bytes.Clone(prefix), after...)
		for it.Seek(start); it.ValidForPrefix(prefix) && len(ids) < limit; it.Next() {
			k := it.Item().Key()
			suffix := k[len(prefix):]
			if after != nil && bytes.Equal(suffix, after) {
				continue
			}
			if stop != nil && bytes.Compare(suffix, stop) >= 0 {
				break
			}
			ids = append(ids, idSuffix(k))
		}
		return nil
	})
	return ids, err
}

// Delete forgets an event: meta, body, attempts, index entries and its
// dedupe key (so the sender's copy would be stored anew).
func (db *DB) Delete(id string) error {
	o := newOp(512, func(b *batch) error {
		e, err := b.getMeta(id)
		if err != nil {
			return err
		}
		return b.remove(e, true)
	})
	if err := db.submit(context.Background(), o); err != nil {
		return fmt.Errorf("deleting event %s: %w", id, err)
	}
	return nil
}

// remove deletes every key of a stored event and counts it out; with
// dedupe, also its dedupe key if that still names it.
func (b *batch) remove(e *Event, dedupe bool) error {
	// Reads first: an error before any write leaves the batch intact.
	var attempts [][]byte
	prefix := attemptPrefix(e.ID)
	it := b.txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
	for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
		attempts = append(attempts, it.Item().KeyCopy(nil))
	}
	it.Close()
	var dk []byte
	if dedupe && e.DedupeKey != "" {
		k := dedupeKey(e.Inbox, e.DedupeKey)
		_, owner, err := readDedupe(b.txn, k)
		if err != nil {
			return err
		}
		if owner == e.ID {
			dk = k
		}
	}

	if err := b.dropRequest(e); err != nil {
		return err
	}
	keys := append(attempts,
		metaKey(e.ID),
		stateKey(e.Inbox, e.State, e.ID))
	if e.State == Pending {
		keys = append(keys, dueKey(e.Inbox, e.NextAttemptAt, e.ID))
	} else {
		keys = append(keys, finishedKey(e.FinishedAt, e.ID))
	}
	if dk != nil {
		keys = append(keys, dk)
	}
	for _, k := range keys {
		if err := b.del(k); err != nil {
			return err
		}
	}
	b.count(e.Inbox, e.State, -1)
	return nil
}
