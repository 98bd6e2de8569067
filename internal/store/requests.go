package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"

	"github.com/dgraph-io/badger/v4"
)

// Requests stay in the journal. An event's request (headers and body) is
// written once, in the journal record of the commit that stores the event,
// and Badger keeps only a reference to it: segment, offset, length and a
// CRC-32C, in the b/ key. A read is one pread. Before, requests went to
// Badger's value log as well: each body was written twice, and since Badger
// writes its value log through a memory map, every body written since the
// start stayed in the server's resident memory, about 200 MB with a million
// events pending.
//
// A segment that holds a stored request is not reused. Each segment's live
// bytes are counted in an l/ key, which the writer keeps exact in the same
// commits, like the state counters; a segment is freed once its count is
// zero and a checkpoint covers it. A few requests kept long (dead events
// kept for the retention period, say) would keep whole segments: so
// compactRequests copies the stored requests of a segment that is mostly
// garbage to the end of the journal, and the segment goes.

// requestRefByte starts a b/ value that is a reference; a request kept in
// Badger itself (stores written before) starts with requestVersion.
const requestRefByte = 2

// requestRefLen: the byte, segment (8), offset (8), length (4), CRC (4).
const requestRefLen = 25

// requestRef says where the journal holds a request.
type requestRef struct {
	seq  uint64
	off  int64
	size int
	crc  uint32
}

func (r requestRef) encode() []byte {
	b := make([]byte, 0, requestRefLen)
	b = append(b, requestRefByte)
	b = binary.BigEndian.AppendUint64(b, r.seq)
	b = binary.BigEndian.AppendUint64(b, uint64(r.off))
	b = binary.BigEndian.AppendUint32(b, uint32(r.size))
	return binary.BigEndian.AppendUint32(b, r.crc)
}

// decodeRequestRef reads a b/ value; ok is false for a request kept inline.
func decodeRequestRef(v []byte) (r requestRef, ok bool, err error) {
	if len(v) == 0 || v[0] != requestRefByte {
		return r, false, nil
	}
	if len(v) != requestRefLen {
		return r, false, fmt.Errorf("%w: request reference of %d bytes", errMetaCorrupt, len(v))
	}
	r.seq = binary.BigEndian.Uint64(v[1:9])
	r.off = int64(binary.BigEndian.Uint64(v[9:17]))
	r.size = int(binary.BigEndian.Uint32(v[17:21]))
	r.crc = binary.BigEndian.Uint32(v[21:25])
	if r.off < 0 {
		return r, false, fmt.Errorf("%w: request reference at offset %d", errMetaCorrupt, r.off)
	}
	return r, true, nil
}

// putRequest writes request (encodeRequest's) into the batch's journal
// record and points id's b/ key at it.
func (b *batch) putRequest(id string, request []byte) error {
	var at int
	b.record, at = appendRequest(b.record, request)
	ref := requestRef{
		seq:  b.seq,
		off:  b.offset + int64(at),
		size: len(request),
		crc:  crc32.Checksum(request, castagnoli),
	}
	if err := b.set(requestKey(id), ref.encode()); err != nil {
		return err
	}
	b.live[ref.seq] += int64(ref.size)
	return nil
}

// requestRefOf reads id's reference as of the batch; ok is false if the
// event has none (no request, or one kept inline).
func (b *batch) requestRefOf(id string) (r requestRef, ok bool, err error) {
	item, err := b.txn.Get(requestKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return r, false, nil
	}
	if err == nil {
		err = item.Value(func(v []byte) error {
			r, ok, err = decodeRequestRef(v)
			return err
		})
	}
	if err != nil {
		return r, false, fmt.Errorf("reading the request of event %s: %w", id, err)
	}
	return r, ok, nil
}

// readRequest reads e's headers and body into e.
func (db *DB) readRequest(txn *badger.Txn, e *Event) error {
	item, err := txn.Get(requestKey(e.ID))
	if err == nil {
		err = item.Value(func(v []byte) error {
			ref, ok, err := decodeRequestRef(v)
			if err != nil || !ok {
				return errors.Join(err, decodeRequest(v, e))
			}
			request, err := db.journal.read(ref.seq, ref.off, ref.size)
			if errors.Is(err, fs.ErrNotExist) {
				return ErrNotFound // deleted since the snapshot was taken
			}
			if err != nil {
				return err
			}
			if crc32.Checksum(request, castagnoli) != ref.crc {
				return fmt.Errorf("%w: request fails its checksum", errMetaCorrupt)
			}
			return decodeRequest(request, e)
		})
	}
	if err != nil {
		return fmt.Errorf("reading the request of event %s: %w", e.ID, err)
	}
	return nil
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
// a page per commit. A request is copied only if its b/ key still points
// into s at commit time: one deleted meanwhile is left behind.
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
		ref []byte
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
				item, err := b.txn.Get(requestKey(p.id))
				if errors.Is(err, badger.ErrKeyNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				same := false
				if err := item.Value(func(v []byte) error { same = bytes.Equal(v, p.ref); return nil }); err != nil {
					return err
				}
				if !same {
					continue
				}
				ref, _, _ := decodeRequestRef(p.ref)
				if err := b.putRequest(p.id, data[ref.off:ref.off+int64(ref.size)]); err != nil {
					return err
				}
				b.live[ref.seq] -= int64(ref.size)
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
	prefix := []byte{tableRequest, '/'}
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
			ref, ok, err := decodeRequestRef(value)
			if err != nil || !ok || ref.seq != s.seq || ref.off < start || ref.off+int64(ref.size) > start+int64(n) {
				return nil // not a request of this record
			}
			page = append(page, stored{id: string(key[len(prefix):]), ref: bytes.Clone(value)})
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
