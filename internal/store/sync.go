package store

import (
	"errors"
	"strings"

	"go.uber.org/zap"
)

// Bodies live in Badger's value log (db.go). With SyncWrites, Badger syncs
// the value log at the end of each write, but a failed sync is only logged
// ("Error while curlf sync") and the write goes on to the write-ahead log,
// whose sync does fail the commit. Left alone, that would let a 200 go out
// for an event whose body never reached the disk. The Badger logger counts
// those messages, and the writer checks the count after each commit: Badger
// logs the failure before the commit returns.
//
// After a failed sync the kernel may have dropped the pages it could not
// write, and a later sync can succeed without them, so one failure is not
// retried: the store refuses every write from then on (the handler answers
// 503, senders retry) until Caddy is restarted on a healthy disk, as
// databases do after a failed fsync.

// valueLogSyncFailure is the start of the format Badger (v4.9) logs a failed
// value-log sync with; TestBadgerStillLogsValueLogSyncFailures checks the
// pinned Badger still does.
const valueLogSyncFailure = "Error while curlf sync"

var errValueLogSync = errors.New("the value log could not be synced to disk: the store refuses writes until Caddy is restarted")

func isValueLogSyncFailure(format string) bool {
	return strings.HasPrefix(format, valueLogSyncFailure)
}

// checkSynced fails the commit that just returned, and the store, if any
// value-log sync has failed since the store was opened: the one of this
// commit, or one of Badger's own writes (a value-log GC) before it.
func (db *DB) checkSynced() error {
	if db.syncFailures.Load() == 0 {
		return nil
	}
	err := errValueLogSync
	if db.failed.CompareAndSwap(nil, &err) {
		db.logger.Error("inbox store failed", zap.String("dir", db.dir), zap.Error(err))
	}
	return err
}
