package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A value-log sync that fails while an event is committed fails that
// enqueue and every write after it; what is stored stays readable. The
// failure is reported through Badger's own logger, as Badger reports it.
func TestValueLogSyncFailureFailsTheStore(t *testing.T) {
	db, _ := openTest(t)
	kept := enqueue(t, db, "in", strings.Repeat("a", 2*valueThreshold))

	db.beforeCommit = func() error {
		db.bdb.Opts().Logger.Errorf(valueLogSyncFailure+": %v\n", errors.New("input/output error"))
		return nil
	}
	body := []byte(strings.Repeat("b", 2*valueThreshold))
	_, _, err := db.Enqueue(context.Background(), &Event{Inbox: "in", Body: body}, 0)
	if !errors.Is(err, errValueLogSync) {
		t.Fatalf("Enqueue during a failed value-log sync = %v, want %v", err, errValueLogSync)
	}
	db.beforeCommit = nil

	_, _, err = db.Enqueue(context.Background(), &Event{Inbox: "in", Body: body}, 0)
	if !errors.Is(err, errValueLogSync) {
		t.Errorf("Enqueue after a failed value-log sync = %v, want %v", err, errValueLogSync)
	}
	e, _, err := db.Get(kept)
	if err != nil {
		t.Fatalf("Get of an event stored before the failure: %v", err)
	}
	if !bytes.Equal(e.Body, []byte(strings.Repeat("a", 2*valueThreshold))) {
		t.Errorf("body read back is %d bytes, not what was stored", len(e.Body))
	}
}

// The detection above relies on the message Badger logs; this fails if the
// pinned Badger no longer logs it, so a Badger upgrade cannot silently turn
// a failed sync back into a 200.
func TestBadgerStillLogsValueLogSyncFailures(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/dgraph-io/badger/v4").Output()
	if err != nil {
		t.Skipf("cannot locate Badger's source: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "value.go"))
	if err != nil {
		t.Skipf("cannot read Badger's source: %v", err)
	}
	if !bytes.Contains(src, []byte(`Errorf("`+valueLogSyncFailure)) {
		t.Errorf("Badger's value.go no longer logs %q: update sync.go", valueLogSyncFailure)
	}
}
