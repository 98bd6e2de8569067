package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// crash stops db as a crash would leave it: no checkpoint, so its journal
// still holds every commit since the last one. Badger's files are closed;
// the test decides what of them survives.
func crash(t *testing.T, db *DB) {
	t.Helper()
	db.stopGoroutines()
	if err := errors.Join(db.journal.close(), db.bdb.Close()); err != nil {
		t.Fatal(err)
	}
}

// wantPending checks that exactly the events ids are pending in inbox "in",
// each readable.
func wantPending(t *testing.T, db *DB, ids ...string) {
	t.Helper()
	for i, id := range ids {
		if got, _, err := db.Get(id); err != nil || got.State != Pending {
			t.Fatalf("event %d (%s): %+v, %v; want it pending", i, id, got, err)
		}
	}
	if n := db.Pending("in"); n != len(ids) {
		t.Errorf("Pending = %d, want %d", n, len(ids))
	}
}

// powerCut is a crash after which Badger's files are as they were at the
// last checkpoint (kept by keepAtCheckpoints in saved): Badger syncs
// nothing between checkpoints, so a power cut may take all of it.
func powerCut(t *testing.T, db *DB, dir, saved string) {
	t.Helper()
	crash(t, db)
	removeBadgerFiles(t, dir)
	copyBadgerFiles(t, saved, dir)
}

// keepAtCheckpoints keeps a copy of Badger's files (not the journal) in a
// directory it returns, taken at each checkpoint: what a power cut could
// leave of them, as Badger syncs nothing between checkpoints.
//
// The copy runs on the checkpointer's goroutine, so it reports with
// t.Error, never t.Fatal.
func keepAtCheckpoints(t *testing.T, db *DB, dir string) string {
	saved := t.TempDir()
	db.afterCheckpoint = func() {
		removeBadgerFiles(t, saved)
		copyBadgerFiles(t, dir, saved)
	}
	return saved
}

// copyBadgerFiles copies Badger's files (not the journal) from dir to to.
func copyBadgerFiles(t *testing.T, dir, to string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Error(err)
		return
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err == nil {
			err = os.WriteFile(filepath.Join(to, e.Name()), b, 0o600)
		}
		if err != nil {
			t.Error(err)
		}
	}
}

// removeBadgerFiles removes Badger's files (not the journal) from dir.
func removeBadgerFiles(t *testing.T, dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Error(err)
		return
	}
	for _, e := range entries {
		if !e.IsDir() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				t.Error(err)
			}
		}
	}
}

// After a crash the journal restores what Badger had not synced: here, as
// after a power cut, Badger's files are put back as they were at the last
// checkpoint. Enqueues, an attempt and the counters come back exactly, and
// the same holds when Badger kept everything (the journal is applied over
// it again).
func TestJournalRestoresCommitsAfterTheCheckpoint(t *testing.T) {
	for _, badgerLost := range []bool{true, false} {
		name := "badger kept its writes"
		if badgerLost {
			name = "badger lost its writes since the checkpoint"
		}
		t.Run(name, func(t *testing.T) {
			db, dir := openTest(t)
			saved := keepAtCheckpoints(t, db, dir)
			big := strings.Repeat("d", 2*valueThreshold) // in Badger's value log
			delivered := enqueue(t, db, "in", big)
			if err := db.checkpoint(); err != nil {
				t.Fatal(err)
			}

			e := claim(t, db, "in", time.Now(), false)
			if e == nil || e.ID != delivered {
				t.Fatalf("claim = %v", e)
			}
			if _, err := db.Record(e.ID, Attempt{N: 1, At: time.Now(), Outcome: OutcomeOK, Status: 200}, Next{Delivered: true}); err != nil {
				t.Fatal(err)
			}
			pending := []string{enqueue(t, db, "in", big+"2"), enqueue(t, db, "in", "small")}
			if badgerLost {
				powerCut(t, db, dir, saved)
			} else {
				crash(t, db)
			}

			db = openAt(t, dir)
			got, attempts, err := db.Get(delivered)
			if err != nil || got.State != Delivered || len(attempts) != 1 || string(got.Body) != big {
				t.Errorf("delivered event after the crash: %+v, %d attempts, %v", got, len(attempts), err)
			}
			for i, id := range pending {
				got, _, err := db.Get(id)
				want := []string{big + "2", "small"}[i]
				if err != nil || got.State != Pending || string(got.Body) != want {
					t.Errorf("pending event %d after the crash: %+v, %v", i, got, err)
				}
			}
			counts := statsByInbox(t, db)["in"].Counts
			if want := map[State]int{Pending: 2, Delivering: 0, Delivered: 1, Dead: 0}; !mapsEqual(counts, want) {
				t.Errorf("counts after the crash = %v, want %v", counts, want)
			}
			// Writes go on after the replay, and survive a clean close.
			later := enqueue(t, db, "in", "later")
			db = reopen(t, db, dir)
			if got, _, err := db.Get(later); err != nil || got.State != Pending {
				t.Errorf("event enqueued after the replay: %+v, %v", got, err)
			}
			if n := db.Pending("in"); n != 3 {
				t.Errorf("Pending = %d, want 3", n)
			}
		})
	}
}

// A power cut can leave a record torn, one whose sync never returned, so
// neither acknowledged nor applied; segments reused after a checkpoint hold
// records of their earlier use past their end. Replay stops at either.
// Badger's files are put back as they were at the last checkpoint, so what
// came after it is restored from the journal alone.
func TestJournalTornAndReusedSegments(t *testing.T) {
	db, dir := openTest(t)
	saved := keepAtCheckpoints(t, db, dir)
	// Six events a segment. Each full one starts a checkpoint, which frees
	// the segments before it for reuse; the test checkpoints as well, so
	// that a slow checkpointer does not leave every segment new.
	// A segment that holds a stored request is kept, so the events of all
	// but the last segments are deleted: deleted events must stay deleted.
	db.journal.segmentSize = 8 << 10
	var ids, deleted []string
	for i := range 57 {
		id := enqueue(t, db, "in", strings.Repeat(string(rune('a'+i%26)), 1000))
		if i < 50 {
			if err := db.Delete(id); err != nil {
				t.Fatal(err)
			}
			deleted = append(deleted, id)
		} else {
			ids = append(ids, id)
		}
		if i%6 == 5 {
			if err := db.checkpoint(); err != nil {
				t.Fatal(err)
			}
		}
	}
	powerCut(t, db, dir, saved)

	segs, _ := filepath.Glob(filepath.Join(dir, journalDir, "*"+segmentExt))
	stale := 0
	for _, path := range segs {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		end, last := validRecords(data, seqOf(t, path))
		if earlierUse(data[end:], seqOf(t, path)) {
			stale++
		}
		if path == segs[len(segs)-1] {
			// A torn record after the newest: its header and half its entries.
			rec := appendEntry(newRecord(nil), entrySet, []byte("k"), []byte(strings.Repeat("v", 100)), 0)
			sealRecord(rec, seqOf(t, path), last+1)
			if err := os.WriteFile(path, append(data[:end], rec[:len(rec)/2]...), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	if stale == 0 {
		t.Error("no segment on disk was reused: none holds an earlier use's records past its end")
	}

	db = openAt(t, dir)
	wantPending(t, db, ids...)
	for _, id := range deleted {
		if _, _, err := db.Get(id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted event %s after the crash: %v", id, err)
		}
	}
	// The writer goes on in a new segment, not after the torn record.
	later := enqueue(t, db, "in", "later")
	crash(t, db)
	db = openAt(t, dir)
	if got, _, err := db.Get(later); err != nil || got.State != Pending {
		t.Errorf("event enqueued after the replay, after another crash: %v", err)
	}
}

// earlierUse tells whether b holds a whole record of a segment other than
// seq. Records of the earlier use need not start where the new ones end.
func earlierUse(b []byte, seq uint64) bool {
	for off := 0; off+recordHeader <= len(b); off++ {
		other := binary.LittleEndian.Uint64(b[off+8 : off+16])
		if _, _, _, ok := decodeRecord(b[off:], other); ok && other != seq {
			return true
		}
	}
	return false
}

// validRecords returns where the valid records of a segment end, and the
// version of the last.
func validRecords(data []byte, seq uint64) (end int, last uint64) {
	for {
		version, _, n, ok := decodeRecord(data[end:], seq)
		if !ok {
			return end, last
		}
		end, last = end+n, version
	}
}

func seqOf(t *testing.T, path string) uint64 {
	t.Helper()
	seq, ok := segmentSeq(filepath.Base(path))
	if !ok {
		t.Fatalf("%s is not a segment", path)
	}
	return seq
}

// A journal sync that fails fails that enqueue and every write after it,
// even once syncs work again: the kernel may have dropped the pages it
// could not write. What is stored stays readable, and the journal stays
// whole for the next Open.
func TestJournalSyncFailureFailsTheStore(t *testing.T) {
	db, dir := openTest(t)
	kept := enqueue(t, db, "in", strings.Repeat("a", 2*valueThreshold))

	db.journal.datasync = func(*os.File) error { return errors.New("input/output error") }
	body := []byte(strings.Repeat("b", 2*valueThreshold))
	_, _, err := db.Enqueue(context.Background(), &Event{Inbox: "in", Body: body}, Limits{})
	if !errors.Is(err, errSyncFailed) {
		t.Fatalf("Enqueue during a failed sync = %v, want %v", err, errSyncFailed)
	}
	db.journal.datasync = datasync

	_, _, err = db.Enqueue(context.Background(), &Event{Inbox: "in", Body: body}, Limits{})
	if !errors.Is(err, errSyncFailed) {
		t.Errorf("Enqueue after a failed sync = %v, want %v", err, errSyncFailed)
	}
	e, _, err := db.Get(kept)
	if err != nil || !bytes.Equal(e.Body, []byte(strings.Repeat("a", 2*valueThreshold))) {
		t.Fatalf("Get of an event stored before the failure: %v", err)
	}
	if err := db.checkpoint(); !errors.Is(err, errSyncFailed) {
		t.Errorf("checkpoint of a failed store = %v, want the failure", err)
	}
	if err := db.Close(); err == nil {
		t.Error("Close of a failed store reported no error")
	}
	db = openAt(t, dir)
	if e, _, err := db.Get(kept); err != nil || e.State != Pending {
		t.Errorf("after reopening: %v", err)
	}
	if _, _, err := readCheckpoint(filepath.Join(dir, journalDir, checkpointFile)); err != nil {
		t.Error(err)
	}
}

// A journal write that fails (a full disk, say) fails that commit only:
// the segment is retired, the next commit starts a new one, and what the
// journal holds after the last checkpoint replays across the two.
func TestJournalWriteFailureFailsOneCommit(t *testing.T) {
	db, dir := openTest(t)
	saved := keepAtCheckpoints(t, db, dir)
	before := enqueue(t, db, "in", "before")
	db.journal.cur.Close() // the next write fails
	if _, _, err := db.Enqueue(context.Background(), &Event{Inbox: "in", Body: []byte("lost")}, Limits{}); !errors.Is(err, errJournalWrite) {
		t.Fatalf("Enqueue with a failing journal write = %v, want %v", err, errJournalWrite)
	}
	after := enqueue(t, db, "in", "after")
	powerCut(t, db, dir, saved)

	db = openAt(t, dir)
	wantPending(t, db, before, after)
}

// A corrupt checkpoint file is an error at Open, not a silent replay of
// everything: commits below it must not be applied again.
func TestCorruptCheckpointIsAnError(t *testing.T) {
	db, dir := openTest(t)
	enqueue(t, db, "in", "x")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, journalDir, checkpointFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(dir, Options{}); err == nil {
		db.Close()
		t.Fatal("Open with a corrupt checkpoint succeeded")
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		t.Fatal("checkpoint removed")
	}
}

// Records and their entries round-trip, and any bytes decode to a clean
// stop or error, never a panic or a read out of bounds.
func FuzzJournalRecord(f *testing.F) {
	rec := newRecord(nil)
	rec = appendEntry(rec, entrySet, []byte("k1"), []byte("v1"), 0)
	rec = appendEntry(rec, entryExpire, []byte("k2"), []byte("v2"), 1700000000)
	rec = appendEntry(rec, entryDelete, []byte("k3"), nil, 0)
	rec, _ = appendRequest(rec, []byte("request"))
	sealRecord(rec, 7, 42)
	f.Add(rec, uint64(7), []byte("key"), []byte("value"))
	f.Add(rec[:len(rec)-1], uint64(7), []byte{}, []byte{})
	f.Add([]byte{}, uint64(0), []byte{0}, []byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte, seq uint64, key, value []byte) {
		if version, entries, n, ok := decodeRecord(b, seq); ok {
			if n > len(b) || len(entries) > n {
				t.Fatalf("record of %d bytes read from %d", n, len(b))
			}
			_ = version
			_ = decodeEntries(entries, func(byte, []byte, []byte, uint64) error { return nil })
		}
		_ = decodeEntries(b, func(byte, []byte, []byte, uint64) error { return nil })

		rec := newRecord(nil)
		rec = appendEntry(rec, entryExpire, key, value, seq)
		rec = appendEntry(rec, entryDelete, value, nil, 0)
		rec, at := appendRequest(rec, key)
		if !bytes.Equal(rec[at:at+len(key)], key) {
			t.Fatalf("appendRequest placed the request at %d, where %q is", at, rec[at:at+len(key)])
		}
		sealRecord(rec, seq, seq+1)
		version, entries, n, ok := decodeRecord(append(rec, b...), seq)
		if !ok || version != seq+1 || n != len(rec) {
			t.Fatalf("record did not round-trip: %v %d %d", ok, version, n)
		}
		var got [][]byte
		err := decodeEntries(entries, func(kind byte, k, v []byte, expiresAt uint64) error {
			got = append(got, []byte{kind}, k, v)
			if kind == entryExpire && expiresAt != seq {
				t.Errorf("expiry %d, want %d", expiresAt, seq)
			}
			return nil
		})
		want := [][]byte{{entryExpire}, key, value, {entryDelete}, value, nil, {entryRequest}, nil, key}
		if err != nil || len(got) != len(want) {
			t.Fatalf("entries: %v, %d fields", err, len(got))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("field %d = %q, want %q", i, got[i], want[i])
			}
		}
	})
}

// When no freed segment is there to reuse, the next segment is the spare,
// already written with zeros: replay stops at the zeros after the last
// record.
func TestNewSegmentsStartZeroFilled(t *testing.T) {
	db, dir := openTest(t)
	j := db.journal
	j.segmentSize = 8 << 10
	spareReady := func() bool {
		j.mu.Lock()
		defer j.mu.Unlock()
		return j.spareReady
	}
	rotateAfterSpare := func() []string {
		deadline := time.Now().Add(10 * time.Second)
		for !spareReady() {
			if time.Now().After(deadline) {
				t.Fatal("no spare segment after 10 s")
			}
			time.Sleep(5 * time.Millisecond)
		}
		var ids []string
		for seq := j.curSeg.seq; j.curSeg.seq == seq; {
			ids = append(ids, enqueue(t, db, "in", strings.Repeat("z", 1000)))
		}
		return ids
	}
	// The first segment starts the first spare; the second is the spare.
	ids := []string{enqueue(t, db, "in", "first")}
	ids = append(ids, rotateAfterSpare()...)
	info, err := os.Stat(filepath.Join(dir, journalDir, segmentName(j.curSeg.seq)))
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() < j.segmentSize {
		t.Errorf("the new segment is %d bytes, want the spare's %d", info.Size(), j.segmentSize)
	}
	crash(t, db)
	wantPending(t, openAt(t, dir), ids...)
}
