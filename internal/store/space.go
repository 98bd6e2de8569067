package store

import (
	"errors"
	"time"
)

// ErrNoSpace is returned by Enqueue when the storage device has too little
// free space left to take a new event safely.
var ErrNoSpace = errors.New("not enough free space on the storage device")

// Badger writes its value log, its write-ahead logs and its tables through
// memory-mapped files that it creates sparse. On a full device such a write
// does not fail with an error: it faults (SIGBUS) and kills the whole
// server. So Enqueue, the one call that makes the store grow, refuses new
// events while the device's free space, less the events already on their
// way to the writer, is below a reserve that covers what Badger may still
// write on its own (a memtable flush, a compaction) and the small records
// of deliveries. The sender gets 503 and sends again later; the events
// already stored keep being delivered.

// defaultMinFree is the default reserve: room for a journal segment and its
// spare (segmentSize each; the journal itself fails a commit cleanly on a
// full disk, but Badger's mapped files do not), the rest of a value-log
// file, a write-ahead log and its flush into a table, and a compaction's
// output tables, with the default sizes.
const defaultMinFree = 128 << 20

// minFreeBytes is the reserve: Options.MinFreeBytes, or the larger of the
// default and what a larger memtable needs.
func minFreeBytes(opts Options) int64 {
	if opts.MinFreeBytes != 0 {
		return opts.MinFreeBytes
	}
	return max(defaultMinFree, valueLogFileSize+4*opts.MemTableSize)
}

// reserveSpace counts n bytes as on their way to the writer, or fails with
// ErrNoSpace when they would eat into the reserve. Unless it fails,
// releaseSpace(n) ends the count once they are committed (or not).
func (db *DB) reserveSpace(n int64) error {
	if db.minFree < 0 {
		return nil
	}
	enqueuing := db.enqueuing.Add(n)
	free, ok := db.freeSpace(enqueuing)
	if ok && free-enqueuing < db.minFree {
		db.releaseSpace(n)
		return ErrNoSpace
	}
	return nil
}

func (db *DB) releaseSpace(n int64) {
	if db.minFree >= 0 {
		db.enqueuing.Add(-n)
	}
}

// freeCacheFor is how long a reading of the free space stands in for the
// next ones while the device is far from the reserve: a statfs per event
// cost about 1% of the server's CPU, and a few MB is all the store can
// write in that time.
const freeCacheFor = 100 * time.Millisecond

// freeSpace is freeBytes, read again only when the last reading is old or
// the free space comes within four reserves of what is on its way.
func (db *DB) freeSpace(enqueuing int64) (int64, bool) {
	now := time.Now().UnixNano()
	if at := db.freeReadAt.Load(); now-at < int64(freeCacheFor) {
		if free := db.freeRead.Load(); free-enqueuing >= 4*db.minFree {
			return free, true
		}
	}
	free, ok := freeBytes(db.dir)
	if ok {
		db.freeRead.Store(free)
		db.freeReadAt.Store(now)
	}
	return free, ok
}
