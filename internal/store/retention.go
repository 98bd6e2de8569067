package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// janitorEvery is how often the journal and the value log are compacted,
// and at most how
// long a finished event outlives its retention: a short retention is swept
// more often (a tenth of it), so history never holds much more than asked.
const janitorEvery = time.Minute

// sweepEvery is the pause between two retention sweeps.
func (db *DB) sweepEvery() time.Duration {
	return min(janitorEvery, max(time.Duration(db.retention.Load())/10, 100*time.Millisecond))
}

// janitor runs the retention sweep, journal compaction and value-log GC,
// and hands old versions to compaction, until Close. Each has its own
// interval; the janitor wakes for whichever is next.
func (db *DB) janitor() {
	defer db.bgWG.Done()
	start := time.Now()
	nextSweep, nextDiscard, nextGC := start.Add(db.sweepEvery()), start.Add(discardEvery), start.Add(janitorEvery)
	t := time.NewTimer(time.Until(minTime(nextSweep, nextDiscard)))
	defer t.Stop()
	for {
		select {
		case <-db.stop:
			return
		case now := <-t.C:
			if !now.Before(nextDiscard) {
				db.discardOld()
				nextDiscard = now.Add(discardEvery)
			}
			if !now.Before(nextSweep) {
				n, err := db.expire(now)
				if err != nil {
					db.logError("removing events past retention", err)
				} else if n > 0 {
					db.logger.Info("removed events past retention", zap.Int("events", n))
				}
				nextSweep = now.Add(db.sweepEvery())
			}
			if !now.Before(nextGC) {
				if n, err := db.compactRequests(); err != nil {
					db.logError("compacting the journal", err)
				} else if n > 0 {
					db.logger.Info("compacted the journal", zap.Int("requests_copied", n))
				}
				db.collectGarbage()
				nextGC = now.Add(janitorEvery)
			}
			// A retention changed by a reload takes effect by the next sweep.
			nextSweep = minTime(nextSweep, now.Add(db.sweepEvery()))
			t.Reset(time.Until(minTime(nextSweep, minTime(nextDiscard, nextGC))))
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// expire removes delivered and dead events finished before now minus the
// retention, a page per commit, and returns how many it removed. Their
// dedupe keys stay until their own TTL: a sender's late copy of an event
// already delivered is still a duplicate.
func (db *DB) expire(now time.Time) (int, error) {
	retention := time.Duration(db.retention.Load())
	if retention <= 0 {
		return 0, nil
	}
	cutoff := now.Add(-retention)
	stop := nanos(cutoff.Add(time.Nanosecond)) // finished at or before the cutoff
	var after []byte
	total := 0
	for {
		ids, err := db.scanFinished(after, stop)
		if err != nil {
			return total, fmt.Errorf("scanning finished events: %w", err)
		}
		if len(ids) == 0 {
			return total, nil
		}
		after = ids[len(ids)-1].suffix
		n := 0
		o := newOp(len(ids)*256, func(b *batch) error {
			n = 0
			for _, f := range ids {
				e, err := b.getMeta(f.id)
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if e.State == Pending || e.FinishedAt.After(cutoff) {
					continue // replayed since
				}
				if err := b.remove(e, false); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err := db.submit(context.Background(), o); err != nil {
			return total, err
		}
		total += n
	}
}

type finishedRef struct {
	id     string
	suffix []byte
}

func (db *DB) scanFinished(after, stop []byte) ([]finishedRef, error) {
	prefix := finishedPrefix()
	var refs []finishedRef
	err := db.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		start := append(append([]byte{}, prefix...), after...)
		for it.Seek(start); it.ValidForPrefix(prefix) && len(refs) < replayPage; it.Next() {
			k := it.Item().Key()
			suffix := k[len(prefix):]
			if len(suffix) != 8+idLen || after != nil && string(suffix) == string(after) {
				continue
			}
			if string(suffix[:8]) >= string(stop) {
				break
			}
			refs = append(refs, finishedRef{id: idSuffix(k), suffix: append([]byte{}, suffix...)})
		}
		return nil
	})
	return refs, err
}

// collectGarbage rewrites value-log files that are at least half garbage
// (events removed, or kept only by old versions), until none is.
//
// Badger moves the live values of a file and deletes it at once, without
// SyncWrites before the moved values are synced. An open iterator makes
// it wait: the file goes when the last iterator closes. So one is held
// until Badger's files are synced, and a power cut cannot take a value
// whose only copy on disk was in the deleted file.
func (db *DB) collectGarbage() {
	txn := db.bdb.NewTransactionAt(db.committed.Load(), false)
	defer txn.Discard()
	hold := txn.NewIterator(badger.IteratorOptions{Prefix: countPrefix()})
	defer hold.Close()
	for {
		err := db.bdb.RunValueLogGC(0.5)
		if err == nil {
			continue
		}
		if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
			db.logger.Warn("value log garbage collection", zap.Error(err))
		}
		break
	}
	// As at a checkpoint, only a failed sync is final.
	if err := syncBadgerFiles(db.dir); errors.Is(err, errSyncFailed) {
		db.fail(fmt.Errorf("after value log garbage collection: %w", err))
	} else if err != nil {
		db.logError("syncing after value log garbage collection", err)
	}
}
