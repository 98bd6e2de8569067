package store

import (
	"sync"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/dgraph-io/badger/v4"
)

// dedupeFilter lets Enqueue skip the Badger read of a dedupe key that was
// never stored, which is nearly every key: a sender resends few events.
// That read ran in the writer for each event with a key, and cost about 6%
// of ingest CPU (a search of the memtable's skiplist and of each level's
// filters); a Bloom filter answers in well under a microsecond.
//
// The filter holds every dedupe key stored, and, since it cannot forget,
// keys whose window has passed: it is built again from the keys Badger
// still holds once it has taken in as many keys as it was sized for.
// While it is being built (at Open, and at each rebuild) it answers
// "maybe" for every key, and Enqueue reads Badger as before.
type dedupeFilter struct {
	mu     sync.Mutex
	f      *bloom.BloomFilter
	ready  bool // f holds every key stored before it was made
	added  uint // keys added to f
	sized  uint // the keys f was made for; more raise its false positives
	found  uint // the keys the last finished load found in Badger
	gen    uint // the build under way: a load of an older one stops
	closed bool
}

const (
	// dedupeFalsePositives: the share of new keys that are read from
	// Badger all the same.
	dedupeFalsePositives = 0.01
	// dedupeGrowth: a filter is made for this many times the keys the last
	// load found, so that it is built again only after a few windows'
	// worth of new keys; at a million live keys it takes 5 MB. If the
	// load finds more than that, the filter is full at once and the next
	// build is sized on what it found.
	dedupeGrowth = 4
)

// dedupeMinKeys: the smallest filter (about 80 KB). A variable for tests.
var dedupeMinKeys uint = 1 << 16

// mayHold reports whether k may have been stored: false only if it surely
// was not.
func (d *dedupeFilter) mayHold(k []byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.ready || d.f.Test(k)
}

// add records that k is being stored. Only the writer calls it, before the
// commit that stores k: a commit that then fails leaves a false positive.
func (d *dedupeFilter) add(k []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.f.Add(k)
	d.added++
}

// full reports whether the filter has taken in the keys it was made for.
func (d *dedupeFilter) full() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ready && d.added > d.sized
}

// rebuild starts a new filter and returns its generation for load. It
// must run in the writer between commits (or before the writer starts):
// keys of commits already made are the load's to add, keys of later ones
// the writer's.
func (d *dedupeFilter) rebuild() uint {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sized = max(d.found*dedupeGrowth, dedupeMinKeys)
	d.f = bloom.NewWithEstimates(d.sized, dedupeFalsePositives)
	d.ready, d.added = false, 0
	d.gen++
	return d.gen
}

// close stops a load under way.
func (d *dedupeFilter) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
}

// load adds the dedupe keys of txn's snapshot to the filter of generation
// gen, and marks it ready. It gives up, leaving the filter answering
// "maybe", if a newer build starts, the store closes or Badger fails.
func (d *dedupeFilter) load(txn *badger.Txn, gen uint) (keys uint) {
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{Prefix: dedupePrefix(), PrefetchValues: false})
	defer it.Close()
	const chunk = 1024 // keys added under one lock
	var ks [][]byte
	flush := func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.gen != gen || d.closed {
			return false
		}
		for _, k := range ks {
			d.f.Add(k)
		}
		d.added += uint(len(ks))
		keys += uint(len(ks))
		ks = ks[:0]
		return true
	}
	for it.Rewind(); it.Valid(); it.Next() {
		ks = append(ks, it.Item().KeyCopy(nil))
		if len(ks) == chunk && !flush() {
			return keys
		}
	}
	if !flush() {
		return keys
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gen == gen {
		d.ready, d.found = true, keys
	}
	return keys
}

// loadDedupeFilter starts a new dedupe filter and fills it in the
// background from the keys committed so far. Only the writer calls it, or
// Open before the writer starts.
func (db *DB) loadDedupeFilter() {
	gen := db.dedupe.rebuild()
	txn := db.bdb.NewTransactionAt(db.committed.Load(), false)
	db.bgWG.Add(1)
	go func() {
		defer db.bgWG.Done()
		db.dedupe.load(txn, gen)
	}()
}
