package store_test

import (
	"testing"
	"time"

	"github.com/hookinbox/hookinbox/internal/store"
	"github.com/hookinbox/hookinbox/internal/storetest"
)

// The Badger store's row of the stores' conformance suite.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, *store.Faults) {
		f := new(store.Faults)
		db, err := store.Open(t.TempDir(), store.Options{Retention: time.Hour, Faults: f})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db, f
	})
}
