package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Group commit. One goroutine owns every mutation: it takes the first queued
// op, drains whatever else is queued, applies them all in one transaction,
// writes that as one journal record and syncs it, commits the transaction,
// then answers each caller. Under load, many enqueues share a sync; alone,
// an enqueue waits for one, as it would anyway. A single writer also makes
// read-check-write sequences (dedupe, counters, index moves) atomic without
// conflict detection.

const (
	// maxBatchOps and maxBatchBytes bound one commit, so that no caller waits
	// behind an unbounded batch. Badger's own limit (15% of the memtable) is
	// handled by splitting on ErrTxnTooBig.
	maxBatchOps   = 1024
	maxBatchBytes = 2 << 20

	// gatherFrom and gatherFor: see writer.
	gatherFrom = 8
	gatherFor  = 500 * time.Microsecond
)

// errApply: a commit whose journal record is synced could not be applied
// to Badger.
var errApply = errors.New("a stored commit could not be applied: the store refuses writes until Caddy is restarted")

// op is one mutation waiting for the writer.
type op struct {
	// apply writes the op into b. It may run more than once (when a batch is
	// split), each time in a fresh transaction, so it keeps its results in
	// variables it overwrites. An error returned before any write fails this
	// op alone; after a write, the batch is rebuilt without it.
	apply func(b *batch) error
	// size estimates the bytes the op writes.
	size int
	// after, if set, runs once when the op is answered, with its result
	// (nil: committed).
	after func(err error)
	done  chan error
}

func newOp(size int, apply func(b *batch) error) *op {
	return &op{apply: apply, size: size, done: doneChans.Get().(chan error)}
}

// doneChans holds the channels ops are answered on: a channel is two
// allocations, and every enqueue has one. The writer sends on an op's
// channel once; submit puts it back only after receiving that answer. One
// whose caller gave up is left to the garbage collector.
var doneChans = sync.Pool{New: func() any { return make(chan error, 1) }}

func (o *op) answer(err error) {
	if o.after != nil {
		o.after(err)
	}
	o.done <- err
}

// batch is one transaction of the writer and the in-memory effects to
// apply once it commits.
type batch struct {
	db     *DB
	txn    *badger.Txn
	writes int
	// record: the batch's writes as a journal record, to be written at
	// offset in journal segment seq.
	record []byte
	seq    uint64
	offset int64
	batchMaps
	// rewrites: the batch changes or deletes the meta of a stored event;
	// rewritten: which events.
	rewrites  bool
	rewritten []string
}

// batchMaps are the in-memory effects of a batch. Only the writer uses
// them, and only until the batch is applied or given up, so each batch
// clears and reuses the last one's.
type batchMaps struct {
	// delta: counter changes per inbox and state.
	delta map[string]*[len(storedStates)]int
	// dueInserts and pendingInserts: the smallest key suffix inserted per
	// inbox into the due and pending indexes, to lower the scan hints.
	dueInserts     map[string][]byte
	pendingInserts map[string][]byte
	wakes          map[string]bool
	// live: changes of the stored request bytes per journal segment.
	live map[uint64]int64
}

func (m *batchMaps) reset() {
	if m.delta == nil {
		*m = batchMaps{
			delta:          make(map[string]*[len(storedStates)]int),
			dueInserts:     make(map[string][]byte),
			pendingInserts: make(map[string][]byte),
			wakes:          make(map[string]bool),
			live:           make(map[uint64]int64),
		}
		return
	}
	clear(m.delta)
	clear(m.dueInserts)
	clear(m.pendingInserts)
	clear(m.wakes)
	clear(m.live)
}

func (db *DB) newBatch(seq uint64, offset int64) *batch {
	db.batchMaps.reset()
	return &batch{
		db:        db,
		txn:       db.bdb.NewTransactionAt(db.committed.Load(), true),
		record:    newRecord(db.record),
		seq:       seq,
		offset:    offset,
		batchMaps: db.batchMaps,
	}
}

func (b *batch) set(k, v []byte) error {
	b.writes++
	b.record = appendEntry(b.record, entrySet, k, v, 0)
	return b.txn.Set(k, v)
}

func (b *batch) setEntry(e *badger.Entry) error {
	b.writes++
	b.record = appendEntry(b.record, entryExpire, e.Key, e.Value, e.ExpiresAt)
	return b.txn.SetEntry(e)
}

func (b *batch) del(k []byte) error {
	if k[0] == tableMeta {
		b.rewrites = true
		b.rewritten = append(b.rewritten, string(k[2:]))
	}
	b.writes++
	b.record = appendEntry(b.record, entryDelete, k, nil, 0)
	return b.txn.Delete(k)
}

func (b *batch) count(inbox string, s State, n int) {
	d := b.delta[inbox]
	if d == nil {
		d = new([len(storedStates)]int)
		b.delta[inbox] = d
	}
	d[stateIndex(s)] += n
}

// pending is the number of pending events of inbox as of this batch: the
// committed count and this batch's changes so far.
func (b *batch) pending(inbox string) int {
	i := stateIndex(Pending)
	n := 0
	if d := b.delta[inbox]; d != nil {
		n = d[i]
	}
	b.db.mu.Lock()
	defer b.db.mu.Unlock()
	if c := b.db.counts[inbox]; c != nil {
		n += c[i]
	}
	return n
}

func lowest(m map[string][]byte, inbox string, suffix []byte) {
	if cur, ok := m[inbox]; !ok || string(suffix) < string(cur) {
		m[inbox] = suffix
	}
}

// getMeta reads an event's meta as of this transaction (its own writes included).
func (b *batch) getMeta(id string) (*Event, error) {
	return readMeta(b.txn, id)
}

// leasedMeta returns a copy of the stored meta of leased event id as its
// Load returned it, if nothing has changed it since: no commit (the writer
// marks the lease stale) and no earlier op of this batch. Nil: the caller
// reads it.
func (b *batch) leasedMeta(id string) *Event {
	if slices.Contains(b.rewritten, id) {
		return nil
	}
	b.db.mu.Lock()
	defer b.db.mu.Unlock()
	m := b.db.loaded[id]
	if m == nil || b.db.stale[id] {
		return nil
	}
	e := *m
	return &e
}

// putMeta writes the meta of stored event e, and returns it encoded.
func (b *batch) putMeta(e *Event) ([]byte, error) {
	b.rewrites = true
	b.rewritten = append(b.rewritten, e.ID)
	meta := encodeMeta(e)
	return meta, b.set(metaKey(e.ID), meta)
}

// transition moves a stored event to state to (due at due when pending,
// finished at finished otherwise), keeping every index and counter in step,
// and writes its meta. A due key holds a copy of the meta: the scan that
// leases the event reads it there, in the block it has already read,
// rather than look the meta up again (queue.go).
func (b *batch) transition(e *Event, to State, due, finished time.Time) error {
	from := e.State
	if from == Pending {
		if err := b.del(dueKey(e.Inbox, e.NextAttemptAt, e.ID)); err != nil {
			return err
		}
	} else if err := b.del(finishedKey(e.FinishedAt, e.ID)); err != nil {
		return err
	}
	if from != to {
		if err := b.del(stateKey(e.Inbox, from, e.ID)); err != nil {
			return err
		}
		if err := b.set(stateKey(e.Inbox, to, e.ID), nil); err != nil {
			return err
		}
		b.count(e.Inbox, from, -1)
		b.count(e.Inbox, to, +1)
	}
	e.State = to
	if to != Pending {
		e.NextAttemptAt, e.FinishedAt = time.Time{}, finished
		if err := b.set(finishedKey(finished, e.ID), nil); err != nil {
			return err
		}
		_, err := b.putMeta(e)
		return err
	}
	e.NextAttemptAt, e.FinishedAt = due, time.Time{}
	meta, err := b.putMeta(e)
	if err != nil {
		return err
	}
	k := dueKey(e.Inbox, due, e.ID)
	if err := b.set(k, meta); err != nil {
		return err
	}
	lowest(b.dueInserts, e.Inbox, dueSuffix(k))
	if from != Pending {
		lowest(b.pendingInserts, e.Inbox, []byte(e.ID))
	}
	b.wakes[e.Inbox] = true
	return nil
}

// writer is the goroutine that owns all mutations; it ends when Close closes
// db.ops, after committing whatever was queued.
func (db *DB) writer() {
	defer db.writerWG.Done()
	ops := make([]*op, 0, maxBatchOps)
	gather := time.NewTimer(time.Hour)
	gather.Stop()
	last := 0 // ops in the last batch
	for first := range db.ops {
		ops = append(ops[:0], first)
		size := first.size
		// Under load, the callers the last commit answered send their next
		// requests a moment later; committing at once would sync a handful
		// and leave the rest for the next sync. Each sync costs the kernel
		// a fixed amount of CPU, so wait up to gatherFor for as many ops as
		// the last batch had. Alone (last < gatherFrom), commit at once.
		wait := last >= gatherFrom
		if wait {
			gather.Reset(gatherFor)
		}
	drain:
		for len(ops) < maxBatchOps && size < maxBatchBytes {
			if wait && len(ops) >= last {
				gather.Stop()
				wait = false
			}
			var o *op
			var ok bool
			if wait {
				select {
				case o, ok = <-db.ops:
				case <-gather.C:
					wait = false
					continue
				}
			} else {
				select {
				case o, ok = <-db.ops:
				default:
					break drain
				}
			}
			if !ok {
				break drain
			}
			ops = append(ops, o)
			size += o.size
		}
		if wait {
			gather.Stop()
		}
		last = len(ops)
		for rest := ops; len(rest) > 0; {
			rest = rest[db.commit(rest):]
		}
		clear(ops)
		if db.dedupe.full() {
			db.loadDedupeFilter()
		}
	}
}

// commit applies a prefix of ops in one transaction, commits it and answers
// those ops. It returns how many ops it answered (at least one).
func (db *DB) commit(ops []*op) int {
	seq, offset, err := db.journal.place()
	if err != nil {
		db.logError("inbox store commit failed", err)
		db.failAll(ops, make([]error, len(ops)), err)
		return len(ops)
	}
	b := db.newBatch(seq, offset)
	defer b.txn.Discard()
	results := make([]error, len(ops))
	for i, o := range ops {
		before := b.writes
		err := o.apply(b)
		if err == nil {
			continue
		}
		if b.writes == before && !errors.Is(err, badger.ErrTxnTooBig) {
			results[i] = err // failed before writing: the batch is intact
			continue
		}
		// The transaction holds part of op i: commit the ops before it on
		// their own; op i then starts a fresh transaction.
		if i > 0 {
			b.txn.Discard()
			db.splits.Add(1)
			return db.commit(ops[:i])
		}
		if errors.Is(err, badger.ErrTxnTooBig) {
			err = fmt.Errorf("event too large for one commit: %w", err)
		}
		o.answer(err)
		return 1
	}
	if err := b.writeCounts(); err != nil {
		if len(ops) > 1 && errors.Is(err, badger.ErrTxnTooBig) {
			b.txn.Discard()
			db.splits.Add(1)
			return db.commit(ops[:len(ops)/2])
		}
		db.failAll(ops, results, err)
		return len(ops)
	}
	if failed := db.failed.Load(); failed != nil {
		err = *failed // ops queued before the store failed
	} else if db.beforeCommit != nil {
		err = db.beforeCommit()
	}
	if err == nil {
		// The journal first: once it is synced the commit survives a
		// crash, whatever Badger had written. A failed write fails this
		// commit; a failed sync, or a synced commit Badger cannot apply
		// (the next Open would), fails the store. A version is not
		// reused.
		db.lastTs++
		err = db.journal.append(db.lastTs, b.record)
		if err == nil {
			cerr := db.faults.check(StepApply)
			if cerr == nil {
				cerr = b.txn.CommitAt(db.lastTs, nil)
			}
			if cerr != nil {
				err = fmt.Errorf("%w: %v", errApply, cerr)
			}
		}
		if errors.Is(err, errSyncFailed) || errors.Is(err, errApply) {
			db.fail(err)
		}
		db.record = b.record[:0]
	}
	if err != nil {
		db.logError("inbox store commit failed", err)
		db.failAll(ops, results, err)
		return len(ops)
	}
	if b.rewrites {
		db.rewrites.add(db.lastTs, b.rewritten)
	}
	db.committed.Store(db.lastTs)
	db.written.Add(int64(len(b.record)))
	db.applied(b)
	for i, o := range ops {
		o.answer(results[i])
	}
	return len(ops)
}

func (db *DB) failAll(ops []*op, results []error, err error) {
	err = fmt.Errorf("committing to inbox store %s: %w", db.dir, err)
	for i, o := range ops {
		if results[i] != nil {
			o.answer(results[i])
		} else {
			o.answer(err)
		}
	}
}

// writeCounts persists the counters this batch changed (events per state,
// request bytes per journal segment), in the same transaction as the
// changes: the single writer keeps them exact.
func (b *batch) writeCounts() error {
	b.db.mu.Lock()
	defer b.db.mu.Unlock()
	for seq, d := range b.live {
		if d == 0 {
			continue
		}
		if v := b.db.live[seq] + d; v > 0 {
			if err := b.set(liveKey(seq), encodeCount(int(v))); err != nil {
				return err
			}
		} else if err := b.del(liveKey(seq)); err != nil {
			return err
		}
	}
	for inbox, d := range b.delta {
		cur := b.db.counts[inbox]
		for i, n := range d {
			if n == 0 {
				continue
			}
			v := n
			if cur != nil {
				v += cur[i]
			}
			if err := b.set(countKey(inbox, storedStates[i]), encodeCount(v)); err != nil {
				return err
			}
		}
	}
	return nil
}

// applied makes a committed batch visible in memory: counters, scan hints,
// then wake-ups, so a woken dispatcher finds the event.
func (db *DB) applied(b *batch) {
	db.mu.Lock()
	for _, id := range b.rewritten {
		if _, ok := db.leases[id]; ok {
			db.stale[id] = true
		}
	}
	for inbox, d := range b.delta {
		c := db.countsOf(inbox)
		for i, n := range d {
			c[i] = max(c[i]+n, 0)
		}
	}
	for seq, d := range b.live {
		if v := db.live[seq] + d; v > 0 {
			db.live[seq] = v
		} else {
			delete(db.live, seq)
		}
	}
	db.mu.Unlock()
	for inbox, s := range b.dueInserts {
		db.hintFor(db.dueHints, inbox).lower(s)
	}
	for inbox, s := range b.pendingInserts {
		db.hintFor(db.pendingHints, inbox).lower(s)
	}
	for inbox := range b.wakes {
		db.wake(inbox)
	}
}

func encodeCount(n int) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(max(n, 0)))
	return b[:]
}

func decodeCount(v []byte) (int, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("counter of %d bytes, want 8", len(v))
	}
	return int(binary.BigEndian.Uint64(v)), nil
}
