package caddymodule

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/hookinbox/hookinbox/internal/store"
)

// The store failing on demand at each step of a write, through a real
// Caddy: the sender never gets a 200 for an event that is not stored, gets
// a 503 with Retry-After instead, and what heals by itself does.
func TestSenderNeverGetsA200ForAnUnstoredEvent(t *testing.T) {
	for _, tt := range []struct {
		step  store.Step
		heals bool // once the step works again, without a restart
	}{
		{store.StepJournalWrite, true},
		{store.StepSync, false},
		{store.StepApply, false},
	} {
		t.Run(string(tt.step), func(t *testing.T) {
			faults := new(store.Faults)
			testStoreFaults = faults
			t.Cleanup(func() { testStoreFaults = nil })
			app := newRecorder(t)
			// A fresh directory: a new store, opened with the fault seam.
			startCaddy(t, inboxConfig(t.TempDir(), app.srv.URL, ""))

			status, answer := send(t, `{"id":"before"}`)
			if status != http.StatusOK {
				t.Fatalf("before the fault: %d", status)
			}
			before := eventID(t, answer)
			// Recorded before the fault, so no record waits on the store at
			// the end of the test.
			waitFor(t, "the first event delivered", 5*time.Second, func() bool {
				e, _, err := activeStore(t).Get(before)
				return err == nil && e.State == store.Delivered
			})
			faults.Fail(tt.step, errors.New("input/output error"))
			for i := range 3 {
				status, answer := send(t, `{"id":"during"}`)
				if status != http.StatusServiceUnavailable {
					t.Fatalf("request %d while %s fails: %d %s, want 503", i, tt.step, status, answer)
				}
			}
			faults.Heal(tt.step)
			status, _ = send(t, `{"id":"after"}`)
			if tt.heals != (status == http.StatusOK) {
				t.Errorf("after %s healed: %d; want 200 only if the store heals by itself (%v)", tt.step, status, tt.heals)
			}

			events, _, err := activeStore(t).List(store.Query{Inbox: "test"})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range events {
				if e.DedupeKey == "during" {
					t.Errorf("an event refused with 503 was stored: %s", e.ID)
				}
			}
			waitFor(t, "the stored events delivered", 5*time.Second, func() bool {
				return len(app.requests()) == map[bool]int{true: 2, false: 1}[tt.heals]
			})
		})
	}
}
