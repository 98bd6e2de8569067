package store

import (
	"bytes"
	"testing"
	"time"
)

var keySink []byte

// Each key and value a batch writes is kept by Badger's transaction until
// the commit, so each costs an allocation; what it is built from must not
// cost another (an enqueue builds five).
func TestKeysAllocateOnce(t *testing.T) {
	now := time.Now()
	const id = "01KBBENCH00000000000000000"
	for _, c := range []struct {
		name  string
		build func() []byte
	}{
		{"metaKey", func() []byte { return metaKey(id) }},
		{"dueKey", func() []byte { return dueKey("inbox", now, id) }},
		{"stateKey", func() []byte { return stateKey("inbox", Pending, id) }},
		{"finishedKey", func() []byte { return finishedKey(now, id) }},
		{"dedupeKey", func() []byte { return dedupeKey("inbox", "evt-1") }},
		{"dedupeValue", func() []byte { return dedupeValue(now, id) }},
	} {
		if n := testing.AllocsPerRun(100, func() { keySink = c.build() }); n > 1 {
			t.Errorf("%s: %.0f allocations, want 1", c.name, n)
		}
	}
}

func TestKeySuffixes(t *testing.T) {
	due := time.Unix(1764633600, 5)
	const id = "01KBBENCH00000000000000000"
	for _, inbox := range []string{"a", "hotmart-production"} {
		k := dueKey(inbox, due, id)
		if got, want := dueSuffix(k), k[len(duePrefix(inbox)):]; !bytes.Equal(got, want) {
			t.Errorf("dueSuffix = %q, want the key after its prefix, %q", got, want)
		}
		if got := stateSuffix(stateKey(inbox, Pending, id)); string(got) != id {
			t.Errorf("stateSuffix = %q, want the id %q", got, id)
		}
	}
	v := dedupeValue(due, id)
	if stored, got := fromNanos(v[:8]), string(v[8:]); !stored.Equal(due) || got != id || len(v) != 8+idLen {
		t.Errorf("dedupeValue reads back as %v, %q (%d bytes)", stored, got, len(v))
	}
}
