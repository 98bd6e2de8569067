package store

import (
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Badger runs in managed mode: the writer numbers its commits itself and a
// read takes the snapshot of the last finished commit. In Badger's own mode
// every new transaction, even a read, waits for the commits in flight to
// finish their fsync; with group commit there nearly always is one, so each
// claim of the delivery workers, and each admin read, would wait for a
// sync. The single writer makes the numbering trivial: commit n+1 starts
// once commit n is done.

// discardEvery is how often old versions are handed to compaction. A read
// uses its snapshot for a moment (one page of a listing at most), so
// versions older than one interval are never read again.
const discardEvery = 10 * time.Second

// view runs fn on a snapshot of every commit finished so far. It never waits.
func (db *DB) view(fn func(txn *badger.Txn) error) error {
	txn := db.bdb.NewTransactionAt(db.committed.Load(), false)
	defer txn.Discard()
	return fn(txn)
}

// discardOld lets compaction drop the versions that were already old at the
// previous call.
func (db *DB) discardOld() {
	if ts := db.discardTs.Load(); ts > 0 {
		db.bdb.SetDiscardTs(ts)
	}
	db.discardTs.Store(db.committed.Load())
}
