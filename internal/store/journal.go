package store

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The journal is the store's write-ahead log: each commit of the writer is
// appended to it and synced before Badger applies it, and that sync is what
// a 200 waits for. Badger itself runs without SyncWrites.
//
// Why not Badger's own sync: Badger writes its write-ahead log and value log
// through memory-mapped files it creates sparse, and syncs each with an
// msync of the whole mapping. Each such sync allocates blocks and
// write-protects the written pages again: about 280 µs of CPU, twice per
// commit (log and value log). A write into a file that is
// already allocated and an fdatasync cost about 90 µs (measured on the
// project's 2-core machine, ext4). With Badger's syncs, ingest ran at about
// half the rate it reaches without them.
//
// The journal is also where requests (headers and body) stay: Badger keeps
// only where each one is (requests.go), so a body is written and synced
// once, and read back with pread, never through a memory map.
//
// Checkpoints: after each full segment, every 30 s and at Close, the store
// syncs Badger's files and records, in the checkpoint file, the version up
// to which Badger holds every commit on disk, and the first segment that
// may hold a later one. Segments wholly at or below it that hold no live
// request are reused.
// On Open, the commits after the checkpoint are applied again, in order, at
// their own versions: a commit Badger already has is written over with the
// same keys and values, one it lost (a power cut before its pages reached
// the disk) is restored. Commits at or below the checkpoint are never
// applied again, since compaction may since have dropped the newer versions
// that hide them.

const (
	journalDir     = "journal"
	checkpointFile = "checkpoint"
	spareFile      = "spare"
	segmentExt     = ".wal"

	// segmentSize: a segment is closed, and a checkpoint started, once it
	// holds this much (it may pass it by one commit: where a commit's
	// requests go is fixed before the commit is built). It bounds the work
	// of a restart after a crash.
	segmentSize = 16 << 20
	// keepFree: segments kept for reuse once checkpointed. A reused segment
	// is already allocated on disk, so its syncs do not touch file-system
	// metadata. When none is free (segments are kept while they hold
	// stored requests, so under a long retention never), the next segment
	// is a spare written with zeros in the background, as PostgreSQL
	// does for its WAL: a sync that also grows the file cost half as much
	// CPU again and 60% more time (measured here, ext4, 13 KB records).
	keepFree = 4

	// maxReaders: segments kept open for reading requests at most.
	// Deliveries read the newest few; the admin API may read any.
	maxReaders = 64

	// recordHeader: length (4), CRC-32C (4) of what follows the CRC,
	// segment number (8), version (8).
	recordHeader = 24
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Entry kinds in a record.
const (
	entrySet    = 1
	entryExpire = 2 // a set with an expiry time
	entryDelete = 3
	// entryRequest holds a request's bytes only: the event's meta, set in
	// the same record, says where they are (requests.go). Replay skips it.
	entryRequest = 4
)

// errSyncFailed marks a failed sync of the journal or of Badger's files; the
// store then refuses every write until it is opened again.
var errSyncFailed = errors.New("the inbox store could not sync its files to disk: it refuses writes until Caddy is restarted")

// errJournalWrite marks a failed write of a journal record (a full disk,
// say): that commit fails, and the store goes on.
var errJournalWrite = errors.New("the inbox journal could not be written")

type segment struct {
	seq  uint64
	path string
	// last is the version of the segment's last record.
	last uint64
}

type journal struct {
	dir string
	// datasync syncs a segment's data; tests replace it to fail.
	datasync func(f *os.File) error
	faults   *Faults
	// segmentSize and maxReaders are the constants but in tests.
	segmentSize int64
	maxReaders  int

	// The writer's: the open segment.
	cur    *os.File
	curSeg segment
	curOff int64

	// mu guards what the checkpointer changes too.
	mu     sync.Mutex
	closed []segment // full segments, oldest first
	free   []string  // checkpointed segments, ready for reuse
	// checkpointed: the version Badger holds on disk; replayFrom: the
	// first segment that may hold a later commit.
	checkpointed uint64
	replayFrom   uint64
	// spareReady: the spare file is a zero-filled segment ready to be the
	// next one; spareBusy: it is being written. Guarded by mu.
	spareReady bool
	spareBusy  bool
	spareWG    sync.WaitGroup
	// readers: segments opened to read requests, by number; readMu keeps a
	// segment from being freed while a read is in progress.
	readMu  sync.RWMutex
	readers map[uint64]*os.File
	// rotated has a value when a segment was closed since the last
	// checkpoint.
	rotated chan struct{}
}

// openJournal opens the journal in dir, creating it if needed. Its segments
// stay as they are until replay has read them.
func openJournal(dir string) (*journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	j := &journal{
		dir:         dir,
		datasync:    datasync,
		segmentSize: segmentSize,
		maxReaders:  maxReaders,
		rotated:     make(chan struct{}, 1),
		readers:     make(map[uint64]*os.File),
	}
	v, from, err := readCheckpoint(filepath.Join(dir, checkpointFile))
	if err != nil {
		return nil, err
	}
	// A spare may be half written: a new one is made.
	if err := os.Remove(filepath.Join(dir, spareFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	j.checkpointed, j.replayFrom = v, from
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if seq, ok := segmentSeq(e.Name()); ok {
			j.closed = append(j.closed, segment{seq: seq, path: filepath.Join(dir, e.Name())})
		}
	}
	slices.SortFunc(j.closed, func(a, b segment) int { return cmp.Compare(a.seq, b.seq) })
	return j, nil
}

// segmentName and segmentSeq map a segment number to its file name and back.
func segmentName(seq uint64) string { return fmt.Sprintf("%016x%s", seq, segmentExt) }

func segmentSeq(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, segmentExt)
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(hex, 16, 64)
	return seq, err == nil
}

// replay calls apply for each record after the checkpoint, oldest first, and
// returns the last version it saw (checkpointed or not). A segment ends at
// its first record that is torn, from an earlier use of the file, or out of
// order. Segments before the checkpoint's replayFrom are not read: every
// record in them is checkpointed, and they may be many (the requests they
// hold are still waiting).
func (j *journal) replay(apply func(version uint64, entries []byte) error) (uint64, error) {
	last := j.checkpointed
	for i := range j.closed {
		s := &j.closed[i]
		if s.seq < j.replayFrom {
			continue
		}
		data, err := os.ReadFile(s.path)
		if err != nil {
			return 0, err
		}
		s.last = 0
		for rest := data; ; {
			version, entries, n, ok := decodeRecord(rest, s.seq)
			if !ok || version <= s.last {
				break
			}
			rest = rest[n:]
			s.last = version
			if version <= last {
				continue
			}
			if err := apply(version, entries); err != nil {
				return 0, fmt.Errorf("applying journal record %d of %s: %w", version, s.path, err)
			}
			last = version
		}
	}
	return last, nil
}

// decodeRecord reads the record at the start of b, which must belong to
// segment seq. ok is false at the end of the valid records.
func decodeRecord(b []byte, seq uint64) (version uint64, entries []byte, n int, ok bool) {
	if len(b) < recordHeader {
		return 0, nil, 0, false
	}
	size := binary.LittleEndian.Uint32(b[0:4])
	if size < recordHeader-8 || uint64(size) > uint64(len(b)-8) {
		return 0, nil, 0, false
	}
	end := 8 + int(size)
	if crc32.Checksum(b[8:end], castagnoli) != binary.LittleEndian.Uint32(b[4:8]) {
		return 0, nil, 0, false
	}
	if binary.LittleEndian.Uint64(b[8:16]) != seq {
		return 0, nil, 0, false // left from the segment's earlier use
	}
	return binary.LittleEndian.Uint64(b[16:24]), b[recordHeader:end], end, true
}

// newRecord returns buf emptied, with room for a record header.
func newRecord(buf []byte) []byte {
	var header [recordHeader]byte
	return append(buf[:0], header[:]...)
}

// appendRequest adds a request's bytes to a record and returns where in the
// record they start.
func appendRequest(rec, request []byte) ([]byte, int) {
	rec = append(rec, entryRequest)
	rec = binary.AppendUvarint(rec, uint64(len(request)))
	return append(rec, request...), len(rec)
}

// appendEntry adds one write to a record.
func appendEntry(rec []byte, kind byte, key, value []byte, expiresAt uint64) []byte {
	rec = append(rec, kind)
	rec = binary.AppendUvarint(rec, uint64(len(key)))
	rec = append(rec, key...)
	if kind == entryDelete {
		return rec
	}
	rec = binary.AppendUvarint(rec, uint64(len(value)))
	rec = append(rec, value...)
	if kind == entryExpire {
		rec = binary.AppendUvarint(rec, expiresAt)
	}
	return rec
}

// sealRecord fills in rec's header.
func sealRecord(rec []byte, seq, version uint64) {
	binary.LittleEndian.PutUint32(rec[0:4], uint32(len(rec)-8))
	binary.LittleEndian.PutUint64(rec[8:16], seq)
	binary.LittleEndian.PutUint64(rec[16:24], version)
	binary.LittleEndian.PutUint32(rec[4:8], crc32.Checksum(rec[8:], castagnoli))
}

var errBadEntry = errors.New("malformed journal entry")

// decodeEntries calls fn for each write of a record's entries. The slices
// point into entries.
func decodeEntries(entries []byte, fn func(kind byte, key, value []byte, expiresAt uint64) error) error {
	field := func() ([]byte, bool) {
		n, w := binary.Uvarint(entries)
		if w <= 0 || n > uint64(len(entries)-w) {
			return nil, false
		}
		f := entries[w : w+int(n)]
		entries = entries[w+int(n):]
		return f, true
	}
	for len(entries) > 0 {
		kind := entries[0]
		entries = entries[1:]
		var key []byte
		var ok bool
		if kind != entryRequest {
			if key, ok = field(); !ok {
				return errBadEntry
			}
		}
		var value []byte
		var expiresAt uint64
		switch kind {
		case entryDelete:
		case entryRequest:
			if value, ok = field(); !ok {
				return errBadEntry
			}
		case entrySet, entryExpire:
			if value, ok = field(); !ok {
				return errBadEntry
			}
			if kind == entryExpire {
				var w int
				if expiresAt, w = binary.Uvarint(entries); w <= 0 {
					return errBadEntry
				}
				entries = entries[w:]
			}
		default:
			return errBadEntry
		}
		if err := fn(kind, key, value, expiresAt); err != nil {
			return err
		}
	}
	return nil
}

// place returns where the next record will start: its segment, and its
// offset there. It starts a new segment first if the open one is full (or
// there is none). Only the writer calls it, before building the record.
func (j *journal) place() (seq uint64, offset int64, err error) {
	if j.cur == nil || j.curOff >= j.segmentSize {
		if err := j.rotate(); err != nil {
			return 0, 0, fmt.Errorf("%w: %v", errJournalWrite, err)
		}
	}
	return j.curSeg.seq, j.curOff, nil
}

// append writes rec (made with newRecord and appendEntry) as the record of
// version where place said, and syncs it. Only the writer calls it. A failed
// write fails this commit only (errJournalWrite): the segment is retired
// and the next record starts a new one. A failed sync is errSyncFailed: the
// store must stop.
func (j *journal) append(version uint64, rec []byte) error {
	if j.cur == nil {
		return fmt.Errorf("%w: no open segment", errJournalWrite)
	}
	sealRecord(rec, j.curSeg.seq, version)
	err := j.faults.check(StepJournalWrite)
	if err == nil {
		_, err = j.cur.WriteAt(rec, j.curOff)
	}
	if err != nil {
		// Whatever part of rec reached the file ends the segment for
		// replay: it fails its checksum.
		j.mu.Lock()
		j.retire()
		j.mu.Unlock()
		return fmt.Errorf("%w: %v", errJournalWrite, err)
	}
	err = j.faults.check(StepSync)
	if err == nil {
		err = j.datasync(j.cur)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", errSyncFailed, err)
	}
	j.curOff += int64(len(rec))
	j.curSeg.last = version
	return nil
}

// retire closes the open segment; every record in it was synced. Callers
// hold j.mu.
func (j *journal) retire() {
	j.cur.Close() // nothing is left to write: an error here changes nothing
	j.closed = append(j.closed, j.curSeg)
	j.cur = nil
	select {
	case j.rotated <- struct{}{}:
	default:
	}
}

// rotate closes the open segment and opens the next: a checkpointed one
// renamed, or a new file.
func (j *journal) rotate() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	next := uint64(1)
	if j.cur != nil {
		j.retire()
	}
	if n := len(j.closed); n > 0 {
		next = j.closed[n-1].seq + 1
	}
	s := segment{seq: next, path: filepath.Join(j.dir, segmentName(next))}
	switch n := len(j.free); {
	case n > 0:
		if err := os.Rename(j.free[n-1], s.path); err != nil {
			return err
		}
		j.free = j.free[:n-1]
	case j.spareReady:
		j.spareReady = false
		if err := os.Rename(filepath.Join(j.dir, spareFile), s.path); err != nil {
			return err
		}
	}
	if len(j.free) == 0 && !j.spareReady && !j.spareBusy {
		j.spareBusy = true
		j.spareWG.Add(1)
		go j.prepareSpare()
	}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err == nil {
		// The new name must be on disk before a record in it is
		// acknowledged: replay finds segments by name.
		err = syncDir(j.dir)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		return err
	}
	j.cur, j.curSeg, j.curOff = f, s, 0
	return nil
}

// prepareSpare writes the spare segment: zeros, synced. A failure only
// means the next segment is a new file.
func (j *journal) prepareSpare() {
	defer j.spareWG.Done()
	path := filepath.Join(j.dir, spareFile)
	err := zeroFill(path, j.segmentSize)
	if err != nil {
		os.Remove(path) // a full disk, say: give the space back
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.spareBusy, j.spareReady = false, err == nil
}

func zeroFill(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	zeros := make([]byte, min(size, 1<<20))
	for done := int64(0); done < size && err == nil; done += int64(len(zeros)) {
		_, err = f.Write(zeros[:min(int64(len(zeros)), size-done)])
	}
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// checkpoint records that Badger holds every commit up to version on disk,
// and frees the closed segments that hold nothing newer and no request
// still stored (holds says which do).
func (j *journal) checkpoint(version uint64, holds func(seq uint64) bool) error {
	if err := writeCheckpoint(j.dir, version, j.firstAfter(version)); err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.checkpointed = version
	keep := j.closed[:0]
	for _, s := range j.closed {
		if s.last > version || holds(s.seq) {
			keep = append(keep, s)
			continue
		}
		j.forget(s.seq)
		if len(j.free) < keepFree {
			j.free = append(j.free, s.path)
		} else if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	clear(j.closed[len(keep):])
	j.closed = keep
	return nil
}

// firstAfter returns the first segment that may hold a record after
// version: segments before it need not be read again on Open. Segments
// opened after it is computed only come later.
func (j *journal) firstAfter(version uint64) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, s := range j.closed {
		if s.last > version {
			return s.seq
		}
	}
	if j.cur != nil {
		return j.curSeg.seq
	}
	if n := len(j.closed); n > 0 {
		return j.closed[n-1].seq + 1
	}
	return 0
}

// read returns n bytes of segment seq from offset off. It fails with
// fs.ErrNotExist if the segment was freed.
func (j *journal) read(seq uint64, off int64, n int) ([]byte, error) {
	b := make([]byte, n)
	j.readMu.RLock()
	if f := j.readers[seq]; f != nil {
		defer j.readMu.RUnlock()
		_, err := f.ReadAt(b, off)
		return b, err
	}
	j.readMu.RUnlock()
	return b, j.readOpening(seq, off, b)
}

// readOpening is read when segment seq has no reader: it opens one, if the
// segment is still in use (a freed one may already be renamed for reuse).
// It runs under both locks, as rarely as a segment is first read.
func (j *journal) readOpening(seq uint64, off int64, b []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	inUse := j.cur != nil && j.curSeg.seq == seq
	for _, s := range j.closed {
		inUse = inUse || s.seq == seq
	}
	if !inUse {
		return fs.ErrNotExist
	}
	j.readMu.Lock()
	defer j.readMu.Unlock()
	f := j.readers[seq]
	if f == nil {
		var err error
		if f, err = os.Open(filepath.Join(j.dir, segmentName(seq))); err != nil {
			return err
		}
		if len(j.readers) >= j.maxReaders {
			// A month of history is thousands of segments: close any
			// other (no read is in progress: readMu is held).
			for other, r := range j.readers {
				r.Close()
				delete(j.readers, other)
				break
			}
		}
		j.readers[seq] = f
	}
	_, err := f.ReadAt(b, off)
	return err
}

// forget closes the reader of a segment being freed, once the reads in
// progress are done. Callers hold j.mu.
func (j *journal) forget(seq uint64) {
	j.readMu.Lock()
	defer j.readMu.Unlock()
	if f := j.readers[seq]; f != nil {
		f.Close()
		delete(j.readers, seq)
	}
}

func (j *journal) checkpointedVersion() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.checkpointed
}

// close closes the open segment and the readers.
func (j *journal) close() error {
	j.spareWG.Wait()
	j.readMu.Lock()
	for seq, f := range j.readers {
		f.Close()
		delete(j.readers, seq)
	}
	j.readMu.Unlock()
	if j.cur == nil {
		return nil
	}
	err := j.cur.Close()
	j.cur = nil
	return err
}

// readCheckpoint reads the checkpointed version and the first segment to
// replay from; zeros if there is no checkpoint yet. A checkpoint written
// before requests moved into the journal has no segment: replay reads them
// all.
func readCheckpoint(path string) (version, from uint64, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	n := len(b) - 4
	if n != 8 && n != 16 || crc32.Checksum(b[:n], castagnoli) != binary.LittleEndian.Uint32(b[n:]) {
		return 0, 0, fmt.Errorf("journal checkpoint %s is corrupt", path)
	}
	if n == 16 {
		from = binary.LittleEndian.Uint64(b[8:])
	}
	return binary.LittleEndian.Uint64(b), from, nil
}

// writeCheckpoint replaces the checkpoint file atomically.
func writeCheckpoint(dir string, version, from uint64) error {
	b := binary.LittleEndian.AppendUint64(nil, version)
	b = binary.LittleEndian.AppendUint64(b, from)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	tmp := filepath.Join(dir, checkpointFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, checkpointFile))
	}
	if err == nil {
		err = syncDir(dir)
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
