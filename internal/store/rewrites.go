package store

import "sync"

// rewriteLogSize: the recent rewrites remembered. A due scan's metas are
// used within milliseconds; at thousands of records a second this covers
// about a second.
const rewriteLogSize = 4096

// rewriteLog remembers which events the recent commits changed or deleted
// (anything but an enqueue), and at which version, so that a meta read on
// an older snapshot can be checked against the commits since. Under
// delivery a record commits every few hundred microseconds, so "has any
// event changed since this snapshot" is nearly always yes, while "has this
// event changed since" is nearly always no.
type rewriteLog struct {
	mu sync.Mutex
	// last: the version of the last remembered rewrite of each event.
	last map[string]uint64
	// ring holds the remembered rewrites, oldest at next once full.
	ring []rewrite
	next int
	// floor: rewrites at or below this version may be forgotten.
	floor uint64
}

type rewrite struct {
	id      string
	version uint64
}

func newRewriteLog() *rewriteLog {
	return &rewriteLog{last: make(map[string]uint64), ring: make([]rewrite, 0, rewriteLogSize)}
}

// add records that the commit at version changed or deleted the metas of
// ids. The writer calls it before the commit is visible to new snapshots.
func (l *rewriteLog) add(version uint64, ids []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		if len(l.ring) < cap(l.ring) {
			l.ring = append(l.ring, rewrite{id, version})
		} else {
			old := l.ring[l.next]
			if l.last[old.id] == old.version {
				delete(l.last, old.id)
			}
			l.floor = max(l.floor, old.version)
			l.ring[l.next] = rewrite{id, version}
			l.next = (l.next + 1) % len(l.ring)
		}
		l.last[id] = version
	}
}

// since tells whether the meta of id may have changed after the snapshot
// at readTs.
func (l *rewriteLog) since(id string, readTs uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return readTs < l.floor || l.last[id] > readTs
}
