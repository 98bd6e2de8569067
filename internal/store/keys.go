package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// Key layout. Every key starts with a one-letter table and a slash, so each
// table is a Badger prefix and can be scanned alone. Ids are ULIDs in their
// 26-character text form, which sorts like their time; times are big-endian
// Unix nanoseconds, which sort like the times. Inbox names end with a zero
// byte (they may not contain one) so one inbox is never a prefix of another.
//
//	m/<id>                          event meta (meta.go), rewritten at each attempt; it ends
//	                                with where the journal holds the request (requests.go)
//	b/<id>                          request (headers and body) of a store written before
//	                                requests moved to the journal; read and deleted only
//	a/<id><n:4>                     attempt n, JSON
//	d/<inbox>\0<due:8><id>          due index: pending events only; the head is what is due
//	s/<inbox>\0<state:1><id>        per-inbox state index; its pending part is arrival order;
//	                                listings walk these (history.go)
//	f/<finished:8><id>              finished (delivered or dead) events, for the retention janitor
//	k/<inbox>\0<hash:16>            dedupe key -> <stored:8><id>, with a Badger TTL
//	c/<inbox>\0<state:1>            event count per inbox and state, 8 bytes
//	l/<segment:8>                   bytes of stored requests in a journal segment, 8 bytes
const (
	idLen = 26

	tableMeta     = 'm'
	tableRequest  = 'b'
	tableAttempt  = 'a'
	tableDue      = 'd'
	tableState    = 's'
	tableFinished = 'f'
	tableDedupe   = 'k'
	tableCount    = 'c'
	tableLive     = 'l'
)

// stateByte is how a stored state is spelled in keys. Delivering is never
// stored (a lease lives in memory), so it has no byte.
func stateByte(s State) byte {
	switch s {
	case Pending:
		return 'p'
	case Delivered:
		return 'v'
	case Dead:
		return 'x'
	}
	return 0
}

func byteState(b byte) State {
	switch b {
	case 'p':
		return Pending
	case 'v':
		return Delivered
	case 'x':
		return Dead
	}
	return ""
}

// storedStates are the states that have indexes and counters.
var storedStates = [...]State{Pending, Delivered, Dead}

func key(table byte, parts ...[]byte) []byte {
	n := 2
	for _, p := range parts {
		n += len(p)
	}
	k := make([]byte, 0, n)
	k = append(k, table, '/')
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

func inboxPart(inbox string) []byte { return append([]byte(inbox), 0) }

// nanos is small enough to be inlined, so that the keys built from it
// (dueKey, finishedKey) cost one allocation, not two.
func nanos(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), unixNanos(t))
}

// unixNanos is t in Unix nanoseconds; 0 for the zero time and times before 1970.
func unixNanos(t time.Time) uint64 {
	n := t.UnixNano()
	if t.IsZero() || n < 0 {
		return 0
	}
	return uint64(n)
}

func fromNanos(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)))
}

func metaKey(id string) []byte    { return key(tableMeta, []byte(id)) }
func requestKey(id string) []byte { return key(tableRequest, []byte(id)) }

func attemptPrefix(id string) []byte { return key(tableAttempt, []byte(id)) }
func attemptKey(id string, n int) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(n))
	return key(tableAttempt, []byte(id), b[:])
}

func duePrefix(inbox string) []byte { return key(tableDue, inboxPart(inbox)) }
func dueKey(inbox string, due time.Time, id string) []byte {
	return key(tableDue, inboxPart(inbox), nanos(due), []byte(id))
}

// dueSuffix is the due time and id that end due key k: what the scan
// hints hold.
func dueSuffix(k []byte) []byte { return k[len(k)-8-idLen:] }

func statePrefix(inbox string, s State) []byte {
	return key(tableState, inboxPart(inbox), []byte{stateByte(s)})
}
func stateKey(inbox string, s State, id string) []byte {
	return key(tableState, inboxPart(inbox), []byte{stateByte(s)}, []byte(id))
}

// stateSuffix is the id that ends state key k: what the pending index's
// scan hint holds.
func stateSuffix(k []byte) []byte { return k[len(k)-idLen:] }

func finishedPrefix() []byte { return key(tableFinished) }
func finishedKey(at time.Time, id string) []byte {
	return key(tableFinished, nanos(at), []byte(id))
}

func dedupePrefix() []byte { return key(tableDedupe) }

// dedupeKey hashes the sender's key: it is attacker-chosen and unbounded in
// length, and only equality matters.
func dedupeKey(inbox, senderKey string) []byte {
	h := sha256.Sum256([]byte(senderKey))
	return key(tableDedupe, inboxPart(inbox), h[:16])
}

// dedupeValue is what a dedupe key holds: when it was stored, and the id
// of the event it was stored for.
func dedupeValue(stored time.Time, id string) []byte {
	v := make([]byte, 0, 8+len(id))
	return append(binary.BigEndian.AppendUint64(v, unixNanos(stored)), id...)
}

func livePrefix() []byte { return key(tableLive) }
func liveKey(seq uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	return key(tableLive, b[:])
}

func countPrefix() []byte { return key(tableCount) }
func countKey(inbox string, s State) []byte {
	return key(tableCount, inboxPart(inbox), []byte{stateByte(s)})
}

// parseCountKey splits a counter key into its inbox and state.
func parseCountKey(k []byte) (inbox string, s State, ok bool) {
	rest := k[2:]
	i := bytes.IndexByte(rest, 0)
	if i < 0 || len(rest) != i+2 {
		return "", "", false
	}
	return string(rest[:i]), byteState(rest[i+1]), true
}

// idSuffix is the id that ends an index key.
func idSuffix(k []byte) string {
	if len(k) < idLen {
		return ""
	}
	return string(k[len(k)-idLen:])
}
