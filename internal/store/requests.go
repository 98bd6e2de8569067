package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"

	"github.com/dgraph-io/badger/v4"
)

// Requests stay in the journal. An event's request (headers and body) is
// written once, in the journal record of the commit that stores the event,
// and the event's meta ends with where it is: segment, offset, length and
// a CRC-32C. A read is one pread. Before, requests went to Badger's value
// log as well: each body was written twice, and since Badger writes its
// value log through a memory map, every body written since the start
// stayed in the server's resident memory, about 200 MB with a million
// events pending. Keeping the place in the meta rather than a key of its
// own spares the tree a key per event, which compactions would copy.
//
// A segment that holds a stored request is not reused. Each segment's live
// bytes are counted in an l/ key, which the writer keeps exact in the same
// commits, like the state counters; a segment is freed once its count is
// zero and a checkpoint covers it. A few requests kept long (dead events
// kept for the retention period, say) would keep whole segments: so
// compactRequests copies the stored requests of a segment that is mostly
// garbage to the end of the journal, and the segment goes.

// requestRef says where the journal holds a request; seq 0 is none.
type requestRef struct {
	seq  uint64
	off  int64
	size int
	crc  uint32
}

// putRequest writes request (encodeRequest's) into the batch's journal
// record and sets e.request to its place; the caller then writes e's meta.
// crc is the request's CRC-32C: an enqueue computes it before the writer
// (which is serial) sees it, and compaction keeps the original, so a body
// damaged on disk stays detectable after it is copied.
func (b *batch) putRequest(e *Event, request []byte, crc uint32) {
	var at int
	b.record, at = appendRequest(b.record, request)
	b.writes++ // a later failure must not leave the bytes counted
	e.request = requestRef{
		seq:  b.seq,
		off:  b.offset + int64(at),
		size: len(request),
		crc:  crc,
	}
	b.live[b.seq] += int64(len(request))
}

// dropRequest counts e's request out of its segment, or deletes it from
// Badger if an older store kept it there.
func (b *batch) dropRequest(e *Event) error {
	if e.request.seq == 0 {
		return b.del(requestKey(e.ID))
	}
	b.live[e.request.seq] -= int64(e.request.size)
	return nil
}

// readRequest reads e's headers and body into e.
func (db *DB) readRequest(txn *badger.Txn, e *Event) error {
	var err error
	if e.request.seq != 0 {
		err = db.readJournalRequest(e)
	} else {
		var item *badger.Item
		if item, err = txn.Get(requestKey(e.ID)); err == nil {
			// Copied: decodeRequest keeps the body in place.
			var v []byte
			if v, err = item.ValueCopy(nil); err == nil {
				err = decodeRequest(v, e)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("reading the request of event %s: %w", e.ID, err)
	}
	return nil
}

func (db *DB) readJournalRequest(e *Event) error {
	r := e.request
	request, err := db.journal.read(r.seq, r.off, r.size)
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNotFound // deleted since the snapshot was taken
	}
	if err != nil {
		return err
	}
	if crc32.Checksum(request, castagnoli) != r.crc {
		return fmt.Errorf("%w: request fails its checksum", errMetaCorrupt)
	}
	return decodeRequest(request, e)
}

// holdsRequests reports whether journal segment seq holds a stored request.
func (db *DB) holdsRequests(seq uint64) bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.live[seq] > 0
}

// compactBelow: a segment whose stored requests fill less than this part of
// it is compacted. At a half, each byte copied frees at least another.
const compactBelow = 0.5

// compactRequests copies the stored requests of checkpointed segments that
// are mostly garbage to the end of the journal, so that the next checkpoint
// frees those segments. It returns how many requests it copied.
func (db *DB) compactRequests() (int, error) {
	total := 0
	for _, s := range db.sparseSegments() {
		n, err := db.compactSegment(s)
		total += n
		if err != nil {
			return total, fmt.Errorf("compacting journal segment %s: %w", s.path, err)
		}
	}
	return total, nil
}

// sparseSegments returns the checkpointed segments that hold stored
// requests but are mostly garbage.
func (db *DB) sparseSegments() []segment {
	j := db.journal
	j.mu.Lock()
	candidates := make([]segment, 0, len(j.closed))
	for _, s := range j.closed {
		if s.last <= j.checkpointed {
			candidates = append(candidates, s)
		}
	}
	j.mu.Unlock()
	var sparse []segment
	for _, s := range candidates {
		db.mu.Lock()
		live := db.live[s.seq]
		db.mu.Unlock()
		info, err := os.Stat(s.path)
		if err != nil || live <= 0 {
			continue
		}
		if float64(live) < compactBelow*float64(max(info.Size(), j.segmentSize)) {
			sparse = append(sparse, s)
		}
	}
	return sparse
}

// compactSegment copies the requests of segment s that are still stored,
// a page per commit. A request is copied only if its event's meta still
// points into s at commit time: one deleted meanwhile is left behind.
func (db *DB) compactSegment(s segment) (int, error) {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil // freed meanwhile: its requests were all deleted
	}
	if err != nil {
		return 0, err
	}
	type stored struct {
		id  string
		ref requestRef
	}
	var page []stored
	total := 0
	flush := func() error {
		if len(page) == 0 {
			return nil
		}
		n := 0
		o := newOp(len(page)*2048, func(b *batch) error {
			n = 0
			for _, p := range page {
				e, err := b.getMeta(p.id)
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if e.request != p.ref {
					continue
				}
				b.putRequest(e, data[p.ref.off:p.ref.off+int64(p.ref.size)], p.ref.crc)
				b.live[p.ref.seq] -= int64(p.ref.size)
				meta, err := b.putMeta(e)
				if err != nil {
					return err
				}
				if e.State == Pending {
					// The due key's copy of the meta says where the request is too.
					if err := b.set(dueKey(e.Inbox, e.NextAttemptAt, e.ID), meta); err != nil {
						return err
					}
				}
				n++
			}
			return nil
		})
		if err := db.submit(context.Background(), o); err != nil {
			return err
		}
		total += n
		page = page[:0]
		return nil
	}
	prefix := []byte{tableMeta, '/'}
	var last uint64
	for rest := data; ; {
		version, entries, n, ok := decodeRecord(rest, s.seq)
		if !ok || version <= last {
			break
		}
		start := int64(len(data) - len(rest))
		rest, last = rest[n:], version
		err := decodeEntries(entries, func(kind byte, key, value []byte, _ uint64) error {
			if kind != entrySet || !bytes.HasPrefix(key, prefix) {
				return nil
			}
			var e Event
			if decodeMeta(value, &e) != nil {
				return nil
			}
			r := e.request
			if r.seq != s.seq || r.off < start || r.off+int64(r.size) > start+int64(n) {
				return nil // a later meta of an event stored elsewhere
			}
			page = append(page, stored{id: e.ID, ref: r})
			if len(page) == replayPage {
				return flush()
			}
			return nil
		})
		if err != nil {
			return total, err
		}
	}
	return total, flush()
}
