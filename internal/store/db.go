// Package store is the durable queue and history of hookinbox, kept in an
// embedded Badger database. It is the only package that imports Badger.
//
// Every mutation goes through one writer goroutine that commits concurrent
// requests together (group commit): one record in the store's journal, one
// fdatasync, then one Badger transaction (journal.go). Reads (Claim, Get,
// List) run on Badger snapshots. Leases of events being delivered live in
// memory only, so after a crash an event in flight is simply due again.
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hookinbox/hookinbox/internal/throttle"
)

// ErrNotFound is returned for an unknown event id.
var ErrNotFound = errors.New("event not found")

// errorLogEvery: a write that keeps failing is logged once per this.
const errorLogEvery = 10 * time.Second

// errClosed is returned by calls made after Close.
var errClosed = errors.New("inbox store is closed")

// Options tune a DB.
type Options struct {
	// Retention: how long delivered and dead events stay in history.
	// Zero or less keeps them until they are deleted.
	Retention time.Duration
	// Logger receives Badger's own log lines and the store's. Nil: none.
	Logger *zap.Logger
	// MemTableSize is Badger's memtable size in bytes; default 8 MiB. It
	// bounds one commit to 15% of it (bodies do not count: they stay in
	// the journal), and memory use to a few times it.
	MemTableSize int64
	// BlockCacheSize is Badger's block cache in bytes; default 8 MiB.
	BlockCacheSize int64
	// MinFreeBytes is the free space Enqueue leaves on the storage device:
	// below it new events get ErrNoSpace. Default: 128 MiB (more with a
	// larger memtable, see space.go); negative: no check.
	MinFreeBytes int64
	// Faults, if set (tests), makes steps of the writes fail on demand.
	Faults *Faults
}

// Query selects events for List.
type Query struct {
	// Inbox, if set, keeps the events of this inbox only.
	Inbox string
	// State, if set, keeps the events in this state only.
	State State
	// Since and Until, if set, keep the events received at or after Since
	// and before Until.
	Since time.Time
	Until time.Time
	// Limit is the page size: default 50, at most 1000.
	Limit int
	// Cursor is the previous page's cursor; empty for the first page.
	Cursor string
}

// InboxStats describes one inbox's stored events.
type InboxStats struct {
	Inbox string
	// Counts has an entry for each of the four states.
	Counts map[State]int
	// OldestPending is when the oldest pending event was received (zero if none).
	OldestPending time.Time
}

// DB is an open store. Its methods are safe for concurrent use.
type DB struct {
	bdb    *badger.DB
	dir    string
	logger *zap.Logger

	retention atomic.Int64 // time.Duration

	// ops feeds the writer; closeMu guards sending on it against Close.
	ops      chan *op
	closeMu  sync.RWMutex
	closed   bool
	writerWG sync.WaitGroup
	stop     chan struct{}
	bgWG     sync.WaitGroup

	// journal: see journal.go; checkpointMu serializes checkpoints.
	journal      *journal
	checkpointMu sync.Mutex

	// beforeCommit, if set (tests), runs before each commit; an error fails it.
	beforeCommit func() error
	faults       *Faults
	// errorLog spaces out the log lines of writes that keep failing.
	errorLog *throttle.Every
	// afterCheckpoint, if set (tests), runs after each checkpoint.
	afterCheckpoint func()
	// failed is set when a sync of the journal or of Badger's files failed,
	// or a synced commit could not be applied: every later write fails
	// with it.
	failed atomic.Pointer[error]
	// dedupe: which dedupe keys were surely never stored (dedupefilter.go).
	dedupe dedupeFilter
	// splits counts batches split because Badger found them too big.
	splits atomic.Int64
	// written counts the bytes of journal records written (memory.go).
	written atomic.Int64

	mu sync.Mutex
	// counts is the persisted count per inbox and stored state (a leased
	// event counts as pending). Only the writer changes it, after a commit.
	counts map[string]*[len(storedStates)]int
	// live is the persisted count of stored request bytes per journal
	// segment (requests.go); only the writer changes it, after a commit.
	live map[uint64]int64
	// leases: event id -> inbox, for events being delivered.
	leases map[string]string
	// carried: the meta a lease's scan read with the event's due key, for
	// Load (queue.go); only for leases whose scan was not outdated.
	carried map[string]*Event
	// loaded: the stored meta of each leased event as Load returned it,
	// for its Record; stale: leased events whose meta a commit changed
	// or deleted since their lease began (the writer marks them), whose
	// Record reads the meta again.
	loaded map[string]*Event
	stale  map[string]bool
	// leased: inbox -> number of leases.
	leased map[string]int
	// replays: leased events replayed during their attempt (operate.go).
	replays map[string]bool
	wakes   map[string]chan struct{}
	// dueHints and pendingHints: where Claim may start scanning an inbox's
	// due index and pending index (see hint.go).
	dueHints     map[string]*hint
	pendingHints map[string]*hint

	ids IDSource

	// minFree and enqueuing: see space.go.
	minFree    int64
	enqueuing  atomic.Int64
	freeRead   atomic.Int64 // the last free-space reading, and when (unix nanos)
	freeReadAt atomic.Int64

	// committed is the version of the last finished commit: what reads see
	// (snapshot.go). lastTs, the last version handed out, is the writer's.
	committed atomic.Uint64
	lastTs    uint64
	// rewrites: which events the recent commits changed: a due scan on an
	// older snapshot may have read a meta since changed (rewrites.go).
	rewrites *rewriteLog
	// record is the writer's buffer for journal records; batchMaps are
	// the writer's maps of a batch, cleared for each (writer.go).
	record    []byte
	batchMaps batchMaps
	// discardTs is the version to discard below at the janitor's next
	// discardOld (snapshot.go).
	discardTs atomic.Uint64
}

// Open opens (creating it if needed) the store in dir. It does not read the
// backlog: only the per-inbox counters are loaded.
func Open(dir string, opts Options) (*DB, error) {
	logger := opts.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	bdb, err := badger.OpenManaged(badgerOptions(dir, opts, logger))
	if err != nil {
		return nil, fmt.Errorf("opening inbox store %s: %w", dir, err)
	}
	j, last, err := openAndReplay(bdb, dir, logger)
	if err != nil {
		bdb.Close()
		return nil, fmt.Errorf("opening inbox store %s: %w", dir, err)
	}
	db := &DB{
		journal:      j,
		bdb:          bdb,
		dir:          dir,
		logger:       logger,
		ops:          make(chan *op, 4096),
		stop:         make(chan struct{}),
		counts:       make(map[string]*[len(storedStates)]int),
		live:         make(map[uint64]int64),
		leases:       make(map[string]string),
		carried:      make(map[string]*Event),
		loaded:       make(map[string]*Event),
		stale:        make(map[string]bool),
		rewrites:     newRewriteLog(),
		leased:       make(map[string]int),
		replays:      make(map[string]bool),
		wakes:        make(map[string]chan struct{}),
		dueHints:     make(map[string]*hint),
		pendingHints: make(map[string]*hint),
	}
	db.faults, j.faults = opts.Faults, opts.Faults
	db.errorLog = throttle.New(errorLogEvery)
	db.lastTs = max(bdb.MaxVersion(), last)
	db.committed.Store(db.lastTs)
	db.retention.Store(int64(opts.Retention))
	db.minFree = minFreeBytes(opts)
	if err := db.loadCounts(); err != nil {
		j.close()
		bdb.Close()
		return nil, fmt.Errorf("opening inbox store %s: %w", dir, err)
	}
	db.loadDedupeFilter()
	db.writerWG.Add(1)
	go db.writer()
	db.bgWG.Add(3)
	go db.janitor()
	go db.checkpointer()
	go db.releaser()
	return db, nil
}

// openAndReplay opens the journal and applies again what it holds after its
// checkpoint; if it applied anything, it checkpoints at once. It returns
// the last version the journal holds.
func openAndReplay(bdb *badger.DB, dir string, logger *zap.Logger) (*journal, uint64, error) {
	j, err := openJournal(filepath.Join(dir, journalDir))
	if err != nil {
		return nil, 0, err
	}
	last, applied, err := replayJournal(bdb, j)
	if err == nil && applied > 0 {
		logger.Info("inbox store: applied the journal again after an unclean stop",
			zap.String("dir", dir), zap.Int("commits", applied))
		// Which segments hold requests is not loaded yet: free none.
		holdsAll := func(uint64) bool { return true }
		if err = syncBadgerFiles(dir); err == nil {
			err = j.checkpoint(last, holdsAll)
		}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("replaying the journal: %w", err)
	}
	return j, last, nil
}

const (
	// valueThreshold: values this size and over go to the value log.
	valueThreshold = 512
	// valueLogFileSize: a value-log file is closed and a new one started
	// past this size.
	valueLogFileSize = 32 << 20
	// tableSize is the size of Badger's tables (badgerOptions).
	tableSize = 512 << 10
)

// badgerOptions sizes Badger for a small machine (two cores, a few hundred
// MB of memory for the whole server): see NOTES.md.
func badgerOptions(dir string, opts Options, logger *zap.Logger) badger.Options {
	// 8 MiB each: with a million events pending, the server's memory soon
	// after a load was 248 MB, against 307 MB with 16 MiB each (one run
	// each of scripts/bench -scale): less arena and cache, a lower GC
	// goal, and fewer table pages mapped.
	memTable := opts.MemTableSize
	if memTable <= 0 {
		memTable = 8 << 20
	}
	blockCache := opts.BlockCacheSize
	if blockCache <= 0 {
		blockCache = 8 << 20
	}
	o := badger.DefaultOptions(dir)
	// Compaction builds each output table in buffers of the Go heap that
	// hold its blocks both raw and compressed: 12 to 28 MB for a table of
	// 2 MB (Snappy shrinks this data two to three times). Up to 13 are in
	// flight per compaction, two compactions run at once, and Badger pools 8
	// of them afterwards, so while a backlog is delivered (every attempt
	// rewrites a few keys) the heap held 200 MB of them. Tables of 512 KiB
	// need buffers a quarter that size; they are all that size at every
	// level, which also keeps tables that double at each level from
	// multiplying it again.
	o.BaseTableSize = tableSize
	o.TableSizeMultiplier = 1
	return o.
		WithLogger(badgerLogger{l: logger.Named("badger")}).
		// Acknowledged means on disk, but through the store's own journal:
		// Badger's syncs cost twice as much (journal.go), and checkpoints
		// sync its files.
		WithSyncWrites(false).
		// One writer, and claims only read: there is nothing to conflict.
		WithDetectConflicts(false).
		WithMemTableSize(memTable).
		// Each memtable is a preallocated arena plus a mapped WAL file: five
		// (the default) would cost over 300 MB. Two: one filling, one flushing.
		WithNumMemtables(2).
		WithNumCompactors(2).
		// A value-log file is mapped sparse at twice this size; the disk
		// reserve (space.go) covers one.
		WithValueLogFileSize(valueLogFileSize).
		// A body is read back once per attempt: check it is what was
		// written rather than forward a damaged one.
		WithVerifyValueChecksum(true).
		WithCompression(options.Snappy).
		WithBlockCacheSize(blockCache).
		WithIndexCacheSize(16 << 20).
		// Values from 512 bytes (a long attempt record, in practice:
		// requests stay in the journal) go to the value log and the tree
		// keeps a pointer, so compactions do not rewrite them. The value
		// log is synced by checkpoints (checkpoint.go).
		WithValueThreshold(valueThreshold).
		WithMetricsEnabled(false)
}

// Close stops the writer and the background goroutines, checkpoints, and
// closes the journal and the database. Calls made after Close fail.
func (db *DB) Close() error {
	if !db.stopGoroutines() {
		return nil
	}
	// A failed store leaves its journal whole, for the next Open.
	err := db.checkpoint()
	err = errors.Join(err, db.journal.close(), db.bdb.Close())
	if err != nil {
		return fmt.Errorf("closing inbox store %s: %w", db.dir, err)
	}
	return nil
}

// stopGoroutines refuses new calls and waits for the writer (which commits
// what was queued) and the background goroutines to end. It returns false
// if the store was already closed.
func (db *DB) stopGoroutines() bool {
	db.closeMu.Lock()
	if db.closed {
		db.closeMu.Unlock()
		return false
	}
	db.closed = true
	close(db.ops)
	close(db.stop)
	db.closeMu.Unlock()
	db.dedupe.close()
	db.writerWG.Wait()
	db.bgWG.Wait()
	return true
}

// SetRetention changes how long finished events are kept, e.g. on a config reload.
func (db *DB) SetRetention(d time.Duration) { db.retention.Store(int64(d)) }

// loadCounts reads the persisted counters into memory.
func (db *DB) loadCounts() error {
	err := db.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: livePrefix(), PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			if len(k) != 10 {
				continue
			}
			err := item.Value(func(v []byte) error {
				n, err := decodeCount(v)
				db.live[binary.BigEndian.Uint64(k[2:])] = int64(n)
				return err
			})
			if err != nil {
				return fmt.Errorf("reading the request bytes of a journal segment: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return db.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: countPrefix(), PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			inbox, s, ok := parseCountKey(item.Key())
			if !ok || s == "" {
				continue
			}
			var n int
			err := item.Value(func(v []byte) error {
				var err error
				n, err = decodeCount(v)
				return err
			})
			if err != nil {
				return fmt.Errorf("reading counter of inbox %q: %w", inbox, err)
			}
			db.countsOf(inbox)[stateIndex(s)] = n
		}
		return nil
	})
}

// countsOf returns the counters of inbox, creating them. Callers hold db.mu
// (or are Open, before any other goroutine runs).
func (db *DB) countsOf(inbox string) *[len(storedStates)]int {
	c := db.counts[inbox]
	if c == nil {
		c = new([len(storedStates)]int)
		db.counts[inbox] = c
	}
	return c
}

func stateIndex(s State) int {
	for i, st := range storedStates {
		if st == s {
			return i
		}
	}
	return -1
}

// badgerLogger routes Badger's log lines into zap. Badger is chatty at info
// level (every compaction and file replay), so info goes to debug. Badger
// logs a debug line at every write: a line is formatted only if its level
// is enabled.
type badgerLogger struct{ l *zap.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.log(zap.ErrorLevel, f, a) }
func (b badgerLogger) Warningf(f string, a ...any) { b.log(zap.WarnLevel, f, a) }
func (b badgerLogger) Infof(f string, a ...any)    { b.log(zap.DebugLevel, f, a) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.log(zap.DebugLevel, f, a) }

func (b badgerLogger) log(level zapcore.Level, f string, a []any) {
	if b.l.Core().Enabled(level) {
		b.l.Log(level, strings.TrimSpace(fmt.Sprintf(f, a...)))
	}
}

// submit hands o to the writer and waits for its commit.
func (db *DB) submit(ctx context.Context, o *op) error {
	db.closeMu.RLock()
	if db.closed {
		db.closeMu.RUnlock()
		return errClosed
	}
	if err := db.failed.Load(); err != nil {
		db.closeMu.RUnlock()
		return *err
	}
	db.ops <- o
	db.closeMu.RUnlock()
	select {
	case err := <-o.done:
		doneChans.Put(o.done)
		return err
	case <-ctx.Done():
		// The op may still commit; for an enqueue the sender's retry is
		// then caught by the dedupe key.
		return ctx.Err()
	}
}
