package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// checkpointEvery: besides after each full journal segment, a checkpoint
// runs this often while commits come in, so that a restart after a crash
// has little to apply again even when traffic is light.
const checkpointEvery = 30 * time.Second

// checkpointer runs the checkpoints until Close.
func (db *DB) checkpointer() {
	defer db.bgWG.Done()
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-db.journal.rotated:
		case <-t.C:
		}
		db.checkpoint() // a failure fails the store and is logged there
	}
}

// checkpoint syncs Badger's files and records that every commit finished so
// far is on disk in Badger, which frees the journal segments before it that
// hold no stored request.
// A failed sync of Badger's files fails the store: the kernel may have
// dropped the pages it could not write, so the journal is kept whole for
// the next Open. Any other failure (a file that cannot be created or
// written, a directory made read-only) frees nothing and changes nothing
// on disk that the journal relies on: the next checkpoint tries again.
func (db *DB) checkpoint() error {
	db.checkpointMu.Lock()
	defer db.checkpointMu.Unlock()
	if err := db.failed.Load(); err != nil {
		return *err
	}
	version := db.committed.Load()
	if version <= db.journal.checkpointedVersion() {
		return nil
	}
	err := db.faults.check(StepCheckpoint)
	if err == nil {
		err = syncBadgerFiles(db.dir)
	}
	if err == nil {
		err = db.journal.checkpoint(version, db.holdsRequests)
	}
	if errors.Is(err, errSyncFailed) {
		err = fmt.Errorf("checkpoint: %w", err)
		db.fail(err)
		return err
	}
	if err != nil {
		err = fmt.Errorf("checkpoint (tried again later): %w", err)
		db.logError("inbox store checkpoint failed", err)
		return err
	}
	if db.afterCheckpoint != nil {
		db.afterCheckpoint()
	}
	return nil
}

// syncBadgerFiles syncs Badger's write-ahead logs (.mem) and value logs
// (.vlog), which it writes through mmap and, without SyncWrites, never
// syncs on its own before rotating them, and then the directory. Tables and
// the manifest Badger syncs itself when it writes them.
func syncBadgerFiles(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".mem") && !strings.HasSuffix(name, ".vlog") {
			continue
		}
		f, err := os.Open(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // flushed into a synced table, or collected, meanwhile
		}
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("%w: syncing %s: %v", errSyncFailed, name, err)
		}
	}
	// A failed sync of the directory loses no data, only, at worst, the
	// names of new files: the checkpoint is not written, and nothing the
	// journal holds is freed.
	return syncDir(dir)
}

// replayJournal applies again, in order and at their own versions, the
// commits the journal holds after its checkpoint. It returns the last
// version the journal holds and how many commits it applied.
func replayJournal(bdb *badger.DB, j *journal) (last uint64, applied int, err error) {
	last, err = j.replay(func(version uint64, entries []byte) error {
		txn := bdb.NewTransactionAt(version, true)
		defer txn.Discard()
		err := decodeEntries(entries, func(kind byte, key, value []byte, expiresAt uint64) error {
			switch kind {
			case entryRequest:
				return nil // the meta set in the same record points at it
			case entryDelete:
				return txn.Delete(key)
			}
			e := badger.NewEntry(key, value)
			e.ExpiresAt = expiresAt
			return txn.SetEntry(e)
		})
		if err != nil {
			return err
		}
		applied++
		return txn.CommitAt(version, nil)
	})
	return last, applied, err
}

// logError logs a failed write, at most once per errorLogEvery: while the
// disk fails, every commit fails.
func (db *DB) logError(msg string, err error) {
	if ok, held := db.errorLog.Allow(time.Now()); ok {
		db.logger.Error(msg, zap.String("dir", db.dir), zap.Error(err),
			zap.Int64("failures_not_logged", held))
	}
}

// fail makes every later write of the store fail with err.
func (db *DB) fail(err error) {
	if db.failed.CompareAndSwap(nil, &err) {
		db.logger.Error("inbox store failed", zap.String("dir", db.dir), zap.Error(err))
	}
}
