package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// badgerHolds tells whether any of Badger's own files (tables, value log,
// write-ahead logs) contains b.
func badgerHolds(t *testing.T, dir string, b []byte) bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, b) {
			return true
		}
	}
	return false
}

// segmentsOnDisk lists the journal's segment files.
func segmentsOnDisk(t *testing.T, dir string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, journalDir, "*"+segmentExt))
	if err != nil {
		t.Fatal(err)
	}
	return segs
}

// A request is written once, to the journal: Badger's files hold its place
// in the event's meta, not the body, and no key of its own; the body reads
// back whole, after a restart too.
func TestRequestsStayInTheJournal(t *testing.T) {
	db, dir := openTest(t)
	body := "the body " + strings.Repeat("0123456789", 100)
	id := enqueue(t, db, "in", body)
	db = reopen(t, db, dir) // Badger flushes and syncs its files at Close

	if badgerHolds(t, dir, []byte(body)) {
		t.Error("Badger's files hold the body")
	}
	err := db.view(func(txn *badger.Txn) error {
		e, err := readMeta(txn, id)
		if err != nil {
			return err
		}
		if e.request.seq == 0 || e.request.size < len(body) {
			return fmt.Errorf("the meta has no place of the request: %+v", e.request)
		}
		if _, err := txn.Get(requestKey(id)); !errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("a b/ key: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e, _, err := db.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Body) != body || e.Header.Get("Content-Type") != "application/json" {
		t.Errorf("read back body %q and header %v", e.Body, e.Header)
	}
}

// A segment is freed only once no stored request is in it: a checkpoint
// keeps the segments of pending events, whose requests stay readable; once
// they are deleted (the counts survive a restart), the next checkpoint
// frees them.
func TestSegmentsWithStoredRequestsAreKept(t *testing.T) {
	db, dir := openTest(t)
	db.journal.segmentSize = 8 << 10
	var ids []string
	for i := range 40 {
		ids = append(ids, enqueue(t, db, "in", strings.Repeat(string(rune('a'+i%26)), 1000)))
	}
	if err := db.checkpoint(); err != nil {
		t.Fatal(err)
	}
	held := len(segmentsOnDisk(t, dir))
	if held < 5 {
		t.Fatalf("%d segments for 40 KB of requests in 8 KB segments", held)
	}
	db = reopen(t, db, dir)
	db.journal.maxReaders = 2 // reading them all closes readers on the way
	for i, id := range slices.Backward(ids) {
		e, _, err := db.Get(id)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if want := strings.Repeat(string(rune('a'+i%26)), 1000); string(e.Body) != want {
			t.Fatalf("event %d: body %.20q…, want %.20q…", i, e.Body, want)
		}
	}
	db.journal.readMu.RLock()
	if n := len(db.journal.readers); n > 2 {
		t.Errorf("%d segments open for reading, want at most 2", n)
	}
	db.journal.readMu.RUnlock()

	for _, id := range ids {
		if err := db.Delete(id); err != nil {
			t.Fatal(err)
		}
	}
	enqueue(t, db, "in", "fills the open segment past its size") // closes the last full one
	if err := db.checkpoint(); err != nil {
		t.Fatal(err)
	}
	// What stays: the open segment and up to keepFree for reuse.
	if n := len(segmentsOnDisk(t, dir)); n > 1+keepFree || n >= held {
		t.Errorf("%d segments on disk after every request in %d was deleted", n, held)
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if len(db.live) != 1 {
		t.Errorf("segments holding requests: %v, want only the open one", db.live)
	}
}

// Compaction copies the few requests still stored in a mostly deleted
// segment to the end of the journal, so the segment can go; the copies
// read back the same, before and after a power cut.
func TestCompactionFreesSparseSegments(t *testing.T) {
	db, dir := openTest(t)
	saved := keepAtCheckpoints(t, db, dir)
	db.journal.segmentSize = 8 << 10
	kept := map[string]string{}
	for i := range 42 {
		body := fmt.Sprintf("%02d%s", i, strings.Repeat("x", 1000))
		id := enqueue(t, db, "in", body)
		if i%7 == 0 {
			kept[id] = body
		} else if err := db.Delete(id); err != nil {
			t.Fatal(err)
		}
	}
	enqueue(t, db, "in", "closes the segment of the last kept event")
	if err := db.checkpoint(); err != nil {
		t.Fatal(err)
	}
	before := segmentsOnDisk(t, dir)

	n, err := db.compactRequests()
	if err != nil {
		t.Fatal(err)
	}
	if n < len(kept)-1 || n > len(kept) {
		t.Errorf("compaction copied %d requests, want the %d kept (but one in the open segment)", n, len(kept))
	}
	if err := db.checkpoint(); err != nil {
		t.Fatal(err)
	}
	gone := 0
	for _, path := range before {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			gone++
		}
	}
	if gone < 3 {
		t.Errorf("%d of %d segments freed after compaction", gone, len(before))
	}
	if n, err := db.compactRequests(); err != nil || n != 0 {
		t.Errorf("second compaction copied %d (%v), want 0", n, err)
	}

	powerCut(t, db, dir, saved)
	db = openAt(t, dir)
	for id, body := range kept {
		e, _, err := db.Get(id)
		if err != nil {
			t.Fatalf("kept event %s: %v", id, err)
		}
		if string(e.Body) != body {
			t.Errorf("kept event %s: body %.10q…, want %.10q…", id, e.Body, body)
		}
	}
	if got := db.Pending("in"); got != len(kept)+1 {
		t.Errorf("Pending = %d, want %d", got, len(kept)+1)
	}
}

// A request damaged on disk is an error, never a wrong body delivered.
func TestDamagedRequestIsAnError(t *testing.T) {
	db, dir := openTest(t)
	body := strings.Repeat("b", 500)
	id := enqueue(t, db, "in", body)
	segs := segmentsOnDisk(t, dir)
	data, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(data, []byte(body))
	if at < 0 {
		t.Fatal("body not in the journal")
	}
	f, err := os.OpenFile(segs[0], os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteAt([]byte("B"), int64(at+100))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Get(id); !errors.Is(err, errMetaCorrupt) {
		t.Errorf("Get of a damaged request = %v, want %v", err, errMetaCorrupt)
	}
}

// Stores written before requests moved to the journal keep them in Badger,
// under a b/ key, with a meta that has no place: those still read, and go
// when the event is deleted.
func TestInlineRequestsStillRead(t *testing.T) {
	db, _ := openTest(t)
	id := enqueue(t, db, "in", "placeholder")
	old := &Event{ID: id, Header: map[string][]string{"X-Old": {"1"}}, Body: []byte("kept in Badger")}
	o := newOp(512, func(b *batch) error {
		e, err := b.getMeta(id)
		if err != nil {
			return err
		}
		b.live[e.request.seq] -= int64(e.request.size)
		e.request = requestRef{}
		if _, err := b.putMeta(e); err != nil {
			return err
		}
		// An older store's due keys hold no copy of the meta.
		if err := b.set(dueKey(e.Inbox, e.NextAttemptAt, id), nil); err != nil {
			return err
		}
		return b.set(requestKey(id), encodeRequest(nil, old))
	})
	if err := db.submit(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	e, _, err := db.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Body) != "kept in Badger" || e.Header.Get("X-Old") != "1" {
		t.Errorf("read back %q, %v", e.Body, e.Header)
	}
	if err := db.Delete(id); err != nil {
		t.Fatal(err)
	}
	err = db.view(func(txn *badger.Txn) error {
		_, err := txn.Get(requestKey(id))
		return err
	})
	if !errors.Is(err, badger.ErrKeyNotFound) {
		t.Errorf("b/ key after Delete: %v", err)
	}
}

// Compaction reads a segment record by record, each checked against its
// CRC: a damaged record is not copied, so a damaged body is never given a
// fresh checksum, and its event stays an error rather than a wrong body.
func TestCompactionCopiesNoDamagedRecord(t *testing.T) {
	db, dir := openTest(t)
	db.journal.segmentSize = 8 << 10
	damaged := strings.Repeat("q", 1000)
	id := enqueue(t, db, "in", damaged)
	for range 12 {
		if err := db.Delete(enqueue(t, db, "in", strings.Repeat("x", 1000))); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.checkpoint(); err != nil {
		t.Fatal(err)
	}
	path := segmentsOnDisk(t, dir)[0]
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(data, []byte(damaged))
	if at < 0 {
		t.Fatal("body not in the first segment")
	}
	data[at+500] = 'Q'
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := db.compactRequests(); err != nil || n != 0 {
		t.Fatalf("compaction copied %d (%v), want none: the one stored is damaged", n, err)
	}
	if _, _, err := db.Get(id); !errors.Is(err, errMetaCorrupt) {
		t.Errorf("Get of a damaged body after compaction = %v, want %v", err, errMetaCorrupt)
	}
}
