package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// waitDedupeReady waits until db's dedupe filter is loaded.
func waitDedupeReady(t *testing.T, db *DB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		db.dedupe.mu.Lock()
		ready := db.dedupe.ready
		db.dedupe.mu.Unlock()
		if ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the dedupe filter is not loaded after 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// enqueueKeys stores one event per key, in parallel, and fails on a
// duplicate or an error.
func enqueueKeys(t *testing.T, db *DB, inbox string, keys []string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(keys))
	for _, k := range keys {
		wg.Go(func() {
			_, dup, err := db.Enqueue(context.Background(), &Event{Inbox: inbox, DedupeKey: k, Body: []byte("x")}, Limits{Dedupe: time.Hour})
			if err == nil && dup {
				err = fmt.Errorf("key %s: a new key was taken for a duplicate", k)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// assertDuplicates checks that each key is answered as a duplicate.
func assertDuplicates(t *testing.T, db *DB, inbox string, keys []string) {
	t.Helper()
	for _, k := range keys {
		_, dup, err := db.Enqueue(context.Background(), &Event{Inbox: inbox, DedupeKey: k, Body: []byte("x")}, Limits{Dedupe: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if !dup {
			t.Fatalf("key %s was stored twice", k)
		}
	}
}

// falsePositives returns the share of never-stored keys the filter may hold.
func falsePositives(db *DB, inbox string, n int) float64 {
	held := 0
	for i := range n {
		if db.dedupe.mayHold(dedupeKey(inbox, fmt.Sprintf("never-%d", i))) {
			held++
		}
	}
	return float64(held) / float64(n)
}

func keysNamed(prefix string, n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return ks
}

func TestDedupeFilterHoldsTheKeysStoredBeforeOpen(t *testing.T) {
	db, dir := openTest(t)
	stored := keysNamed("evt", 500)
	enqueueKeys(t, db, "in", stored)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, dir)
	waitDedupeReady(t, db)
	for _, k := range stored {
		if !db.dedupe.mayHold(dedupeKey("in", k)) {
			t.Fatalf("the filter loaded at Open does not hold stored key %s", k)
		}
	}
	if fp := falsePositives(db, "in", 2000); fp > 0.05 {
		t.Errorf("the filter may hold %.0f%% of keys never stored; want a few", 100*fp)
	}
	assertDuplicates(t, db, "in", stored)
}

// Keys stored while the filter loads are after its snapshot: the writer
// must add them.
func TestDedupeFilterHoldsTheKeysStoredWhileItLoads(t *testing.T) {
	db, dir := openTest(t)
	enqueueKeys(t, db, "in", keysNamed("before", 3000))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, dir)
	during := keysNamed("during", 200)
	enqueueKeys(t, db, "in", during)
	waitDedupeReady(t, db)
	for _, k := range during {
		if !db.dedupe.mayHold(dedupeKey("in", k)) {
			t.Fatalf("the filter does not hold key %s, stored after Open", k)
		}
	}
	assertDuplicates(t, db, "in", during)
}

func TestDedupeFilterIsBuiltAgainWhenFull(t *testing.T) {
	defer func(n uint) { dedupeMinKeys = n }(dedupeMinKeys)
	dedupeMinKeys = 64
	db, _ := openTest(t)
	waitDedupeReady(t, db)
	var stored []string
	for round := range 8 {
		ks := keysNamed(fmt.Sprintf("round%d", round), 100)
		enqueueKeys(t, db, "in", ks)
		stored = append(stored, ks...)
	}
	waitDedupeReady(t, db)
	db.dedupe.mu.Lock()
	gen, sized := db.dedupe.gen, db.dedupe.sized
	db.dedupe.mu.Unlock()
	if gen < 2 || sized < uint(len(stored)) {
		t.Fatalf("after %d keys the filter is build %d, made for %d keys; want it built again, larger", len(stored), gen, sized)
	}
	// A 64-key filter holding 800 keys would answer "maybe" to most.
	if fp := falsePositives(db, "in", 2000); fp > 0.05 {
		t.Errorf("the filter may hold %.0f%% of keys never stored; want a few", 100*fp)
	}
	assertDuplicates(t, db, "in", stored)
}
