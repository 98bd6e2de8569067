package store

import (
	"bytes"
	"sync"
)

// hint remembers where a scan of one inbox's index may start, so that Claim
// does not walk again over the deletion markers of events already delivered
// (Badger keeps them until compaction, and a drained backlog of a million
// events leaves a million of them at the head of the index).
//
// Invariant: no live key of the index sorts before pos. A scan that found
// its first live key at head may move pos up to head, but a key committed
// while the scan ran may be missing from its snapshot; so the writer, after
// each commit, lowers pos to what it inserted and also records it in lowered
// while scans are in flight, and a scan never moves pos above lowered.
//
// The due index also has claimed, with the invariant: every live key before
// it is leased. Leased events stay in the index until their record commits,
// a few milliseconds, and at thousands of deliveries a second the head holds
// dozens of them; without claimed each claim walked over all of them and
// the deletion markers between them, which made claims, not the app, the
// limit of the delivery rate. It moves past each key a scan leases, is
// lowered with pos, and is forgotten when a lease ends with its key still
// live (a release, a record that failed).
//
// The due index also has ahead: the due keys a scan found after the one it
// leased, none of them leased then, in key order. The next claims take
// them one by one without a scan, moving claimed past each, until none is
// left or a key is inserted before the last of them (then the order they
// were found in is no longer the index's).
type hint struct {
	mu      sync.Mutex
	pos     []byte // key suffix after the index prefix; nil: the start
	claimed []byte // nil: the start
	scans   int
	lowered []byte
	ahead   []dueKeyRead
}

// dueKeyRead is a due key as a scan read it: its suffix, its event, and the
// meta it held on the scan's snapshot at readTs (nil if it held none).
type dueKeyRead struct {
	suffix []byte
	id     string
	meta   *Event
	readTs uint64
}

// past sorts after every key suffix of the indexes (ids and big-endian
// times never start with 0xff).
var past = []byte{0xff}

func (db *DB) hintFor(m map[string]*hint, inbox string) *hint {
	db.mu.Lock()
	defer db.mu.Unlock()
	h := m[inbox]
	if h == nil {
		h = new(hint)
		m[inbox] = h
	}
	return h
}

// begin registers a scan and returns where it may start.
func (h *hint) begin() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.scans++
	if h.scans == 1 {
		h.lowered = nil
	}
	return h.pos
}

// end closes a scan that found its first live key at head (nil: none).
func (h *hint) end(head []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.scans--
	if head == nil {
		head = past
	}
	if h.lowered != nil && bytes.Compare(h.lowered, head) < 0 {
		head = h.lowered
	}
	h.pos = head
}

// beginClaim registers a scan of the due index and returns where it may
// start: after the leased keys if that is past pos (fromHead false: the
// scan does not see the head, so it cannot move pos).
func (h *hint) beginClaim() (start []byte, fromHead bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.scans++
	if h.scans == 1 {
		h.lowered = nil
	}
	if bytes.Compare(h.claimed, h.pos) > 0 {
		return h.claimed, false
	}
	return h.pos, true
}

// endClaim closes a scan begun with beginClaim: it found its first live key
// at head (meaningful only fromHead) and leased the key at leased (nil:
// none), so every live key up to it is leased; ahead are the due keys it
// found after leased.
func (h *hint) endClaim(head []byte, fromHead bool, leased []byte, ahead []dueKeyRead) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.scans--
	if fromHead {
		if head == nil {
			head = past
		}
		h.pos = h.notAboveLowered(head)
	}
	if leased == nil {
		return
	}
	// The smallest suffix after leased: leased itself plus a zero byte.
	claimed := append(bytes.Clone(leased), 0)
	h.claimed = h.notAboveLowered(claimed)
	h.ahead = nil
	// A key inserted while the scan ran, before the last of ahead, is not
	// in ahead: taking ahead would move claimed past it.
	if n := len(ahead); n > 0 && (h.lowered == nil || bytes.Compare(h.lowered, ahead[n-1].suffix) > 0) {
		h.ahead = ahead
	}
}

// nextAhead takes the first due key of ahead, if any, and moves claimed
// past it: the keys before it were taken the same way, or leased.
func (h *hint) nextAhead() (dueKeyRead, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.ahead) == 0 {
		return dueKeyRead{}, false
	}
	k := h.ahead[0]
	h.ahead[0] = dueKeyRead{}
	h.ahead = h.ahead[1:]
	h.claimed = append(bytes.Clone(k.suffix), 0)
	return k, true
}

func (h *hint) notAboveLowered(pos []byte) []byte {
	if h.lowered != nil && bytes.Compare(h.lowered, pos) < 0 {
		return h.lowered
	}
	return pos
}

// forgetClaims drops claimed: a lease ended with its key still live.
func (h *hint) forgetClaims() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.claimed = nil
	h.ahead = nil
}

// abort closes a scan that failed, leaving pos where it was.
func (h *hint) abort() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.scans--
}

// peek returns pos without registering a scan: fine for a read that does not move it.
func (h *hint) peek() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pos
}

// lower records that suffix was inserted (called after the commit).
func (h *hint) lower(suffix []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pos != nil && bytes.Compare(suffix, h.pos) < 0 {
		h.pos = suffix
	}
	if h.claimed != nil && bytes.Compare(suffix, h.claimed) < 0 {
		h.claimed = suffix
	}
	if n := len(h.ahead); n > 0 && bytes.Compare(suffix, h.ahead[n-1].suffix) < 0 {
		h.ahead = nil
	}
	if h.scans > 0 && (h.lowered == nil || bytes.Compare(suffix, h.lowered) < 0) {
		h.lowered = suffix
	}
}
