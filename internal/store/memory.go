package store

import (
	"runtime/debug"
	"time"
)

// Memory after a burst. Badger builds each table it flushes or compacts in a
// buffer of its own, keeps up to 8 of them for the next compaction, and
// frees one each 2 s once compactions stop: on a store of a million events
// that is about 100 MB. Freed, they are garbage, but an idle server's Go
// runtime collects only every 2 minutes, and then returns the memory to the
// system slowly. Measured (scripts/bench -scale), the same server read
// 242 MB or 413 MB at rest, depending on when that GC had last run.
//
// So once the store has written a burst and then been idle a while, it asks
// the runtime to collect and return what is free, a few times as the idle
// stretch grows (Badger's compactions may run on after the writes stop),
// and then not again until the next burst. Each costs about 12 ms of CPU
// and 6 ms of wall time with 30 MB of heap in use and 100 MB to return
// (measured with a small program on the 2-core machine).

const (
	// releaseBurst is how much the store must have written since the last
	// release for the next idle stretch to release memory.
	releaseBurst = 64 << 20
	// releaseIdle: the first release comes after this long without a
	// write, the next ones after twice as long as the one before, up to
	// releaseIdleMax.
	releaseIdle    = 20 * time.Second
	releaseIdleMax = 160 * time.Second
	releaseTick    = 5 * time.Second

	// releasesDone: nextIdle past releaseIdleMax, so no release is due
	// until the next burst.
	releasesDone = 2 * releaseIdleMax
)

// memoryRelease decides when to give memory back. It is fed the store's
// write count and the clock; the caller does the release.
type memoryRelease struct {
	written int64     // bytes written, as last seen
	changed time.Time // when written last changed
	since   int64     // written at the last release
	// nextIdle is how long without a write the next release waits for;
	// past releaseIdleMax, the current burst's releases are all done.
	nextIdle time.Duration
}

func newMemoryRelease(now time.Time) *memoryRelease {
	return &memoryRelease{changed: now, nextIdle: releasesDone}
}

// due reports whether to release now, given the bytes written so far.
func (m *memoryRelease) due(now time.Time, written int64) bool {
	if written != m.written {
		m.written, m.changed = written, now
		if written-m.since >= releaseBurst {
			// A new burst: its idle stretch starts over.
			m.nextIdle = releaseIdle
		}
		return false
	}
	if m.nextIdle > releaseIdleMax || now.Sub(m.changed) < m.nextIdle {
		return false
	}
	m.since = written
	m.nextIdle *= 2
	return true
}

// releaser is the goroutine that returns memory after bursts.
func (db *DB) releaser() {
	defer db.bgWG.Done()
	t := time.NewTicker(releaseTick)
	defer t.Stop()
	m := newMemoryRelease(time.Now())
	for {
		select {
		case <-db.stop:
			return
		case now := <-t.C:
			if m.due(now, db.written.Load()) {
				debug.FreeOSMemory()
			}
		}
	}
}
