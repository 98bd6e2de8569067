package natsstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hookinbox/hookinbox/internal/natstest"
	"github.com/hookinbox/hookinbox/internal/store"
)

// A node that dies after counting an event but before storing it leaves
// the inbox's pending count one too high, which max_pending would hold
// against every sender for ever. The sweep sets the count back to the
// pending events once the inbox is quiet.
func TestSweepCorrectsAPendingCountLeftOff(t *testing.T) {
	nc, err := nats.Connect(natstest.Server(t, nil).ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	s, err := Open(context.Background(), nc, Options{Prefix: "recount", sweepEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	limits := store.Limits{MaxPending: 3}
	for range 2 {
		if _, _, err := s.Enqueue(context.Background(), &store.Event{Inbox: "in"}, limits); err != nil {
			t.Fatal(err)
		}
	}
	// The dead node's count, with no event behind it.
	if err := s.addPending(context.Background(), "in", +1, 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, _, err := s.Enqueue(context.Background(), &store.Event{Inbox: "in"}, limits)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrInboxFull) || time.Now().After(deadline) {
			t.Fatalf("a third event under max_pending 3 with two pending: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	entry, err := s.counts.Get(context.Background(), "in")
	if err != nil || string(entry.Value()) != "3" {
		t.Errorf("pending count after the third event: %v %v, want 3", entry, err)
	}
}
