package natsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/hookinbox/hookinbox/internal/store"
)

// scanTimeout bounds a scan of the events bucket (listings, counts, bulk
// replays, the retention sweep).
const scanTimeout = time.Minute

// sweepEvery: how often each node removes the finished events past the
// retention (every node does; the removals are idempotent).
const sweepEvery = time.Minute

// readRequest sets e's header and body from its request's key.
func (s *Store) readRequest(ctx context.Context, r *record, e *store.Event) error {
	m, err := s.eventsStream.GetLastMsgForSubject(ctx, s.eventsSubject+r.ID+".req")
	if err != nil {
		return fmt.Errorf("reading request: %w", err)
	}
	if err := json.Unmarshal([]byte(m.Header.Get(hdrHeader)), &e.Header); err != nil {
		return fmt.Errorf("decoding request header: %w", err)
	}
	e.Body = m.Data
	return nil
}

// Get returns an event with its request and every attempt, oldest first.
func (s *Store) Get(id string) (*store.Event, []store.Attempt, error) {
	ctx, cancel := s.op()
	defer cancel()
	r, _, err := s.getRecord(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, store.ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("getting event %s: %w", id, err)
	}
	e := r.event()
	if err := s.readRequest(ctx, r, e); err != nil {
		return nil, nil, fmt.Errorf("getting event %s: %w", id, err)
	}
	return e, r.History, nil
}

// List returns events newest first (by arrival), without bodies, and the
// cursor of the next page. It scans the whole events bucket.
func (s *Store) List(q store.Query) ([]*store.Event, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	if q.Cursor != "" {
		u, err := ulid.ParseStrict(q.Cursor)
		if err != nil {
			return nil, "", store.ErrBadCursor
		}
		q.Cursor = u.String()
	}
	switch q.State {
	case "", store.Pending, store.Delivering, store.Delivered, store.Dead:
	default:
		return nil, "", fmt.Errorf("listing events: unknown state %q", q.State)
	}
	ctx, cancel := context.WithTimeout(context.Background(), scanTimeout)
	defer cancel()
	var events []*store.Event
	err := s.scan(ctx, func(r *record) {
		if q.Inbox != "" && r.Inbox != q.Inbox || q.Cursor != "" && r.ID >= q.Cursor ||
			!q.Since.IsZero() && r.ReceivedAt.Before(q.Since) ||
			!q.Until.IsZero() && !r.ReceivedAt.Before(q.Until) {
			return
		}
		e := r.event()
		if q.State != "" && e.State != q.State {
			return
		}
		events = append(events, e)
	})
	if err != nil {
		return nil, "", fmt.Errorf("listing events: %w", err)
	}
	slices.SortFunc(events, func(a, b *store.Event) int { return strings.Compare(b.ID, a.ID) })
	if len(events) <= limit {
		return events, "", nil
	}
	events = events[:limit]
	return events, events[limit-1].ID, nil
}

// Inboxes returns each inbox's counts by state and its oldest pending
// event's arrival, sorted by inbox name. It scans the whole events bucket.
func (s *Store) Inboxes() ([]store.InboxStats, error) {
	ctx, cancel := context.WithTimeout(context.Background(), scanTimeout)
	defer cancel()
	byInbox := map[string]*store.InboxStats{}
	err := s.scan(ctx, func(r *record) {
		st := byInbox[r.Inbox]
		if st == nil {
			st = &store.InboxStats{Inbox: r.Inbox, Counts: map[store.State]int{
				store.Pending: 0, store.Delivering: 0, store.Delivered: 0, store.Dead: 0,
			}}
			byInbox[r.Inbox] = st
		}
		e := r.event()
		st.Counts[e.State]++
		if r.State == store.Pending && (st.OldestPending.IsZero() || r.ReceivedAt.Before(st.OldestPending)) {
			st.OldestPending = r.ReceivedAt
		}
	})
	if err != nil {
		return nil, fmt.Errorf("reading inbox stats: %w", err)
	}
	stats := make([]store.InboxStats, 0, len(byInbox))
	for _, st := range byInbox {
		stats = append(stats, *st)
	}
	slices.SortFunc(stats, func(a, b store.InboxStats) int { return strings.Compare(a.Inbox, b.Inbox) })
	return stats, nil
}

// Replay makes an event pending and due at now, whatever its state, with a
// fresh retry schedule; its attempts are kept. An event whose attempt is in
// flight (on any node) is marked: the attempt's record makes it due again.
func (s *Store) Replay(id string, now time.Time) error {
	ctx, cancel := s.op()
	defer cancel()
	if err := s.replay(ctx, id, now); err != nil {
		return fmt.Errorf("replaying event %s: %w", id, err)
	}
	return nil
}

func (s *Store) replay(ctx context.Context, id string, now time.Time) error {
	var published uint64
	var wasFinished, waited bool
	r, err := s.update(ctx, id, func(r *record) (bool, error) {
		wasFinished, waited = r.State != store.Pending, false
		r.ReplayedAfter = r.Attempts
		if r.Lease.live() {
			r.Replayed = true
			r.State, r.NextAttemptAt, r.FinishedAt = store.Pending, now, time.Time{}
			wasFinished = false
			return true, nil
		}
		// A finished event has no due message, an unordered one waiting for
		// its retry has a schedule: each gets a due message now. An ordered
		// one keeps its place in the line.
		waited = !wasFinished && !r.Ordered && r.NextAttemptAt.After(time.Now())
		r.State, r.NextAttemptAt, r.FinishedAt = store.Pending, now, time.Time{}
		r.Lease = nil
		if wasFinished || waited {
			if published != r.Gen+1 {
				published = r.Gen + 1
				if err := s.publishDue(ctx, r.Inbox, id, published, time.Time{}); err != nil {
					return false, err
				}
			}
			r.Gen = published
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if waited {
		s.purgeSchedule(ctx, r.Inbox, id)
	}
	if wasFinished {
		s.addPending(ctx, r.Inbox, +1, 0)
	}
	s.wake(token(r.Inbox))
	return nil
}

// ReplayInbox replays every event of inbox in state and returns how many.
// It scans the whole events bucket.
func (s *Store) ReplayInbox(inbox string, state store.State, now time.Time) (int, error) {
	switch state {
	case store.Pending, store.Delivered, store.Dead:
	default:
		return 0, fmt.Errorf("replaying inbox %s: cannot replay state %q", inbox, state)
	}
	ctx, cancel := context.WithTimeout(context.Background(), scanTimeout)
	defer cancel()
	var ids []string
	err := s.scan(ctx, func(r *record) {
		if r.Inbox == inbox && r.State == state {
			ids = append(ids, r.ID)
		}
	})
	if err != nil {
		return 0, fmt.Errorf("replaying inbox %s: %w", inbox, err)
	}
	slices.Sort(ids)
	n := 0
	for _, id := range ids {
		err := s.replay(ctx, id, now)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("replaying inbox %s: %w", inbox, err)
		}
		n++
	}
	return n, nil
}

// Delete forgets an event: its state, its request, its waiting retry and
// its dedupe key (so the sender's copy would be stored anew). An attempt in
// flight then records store.ErrNotFound.
func (s *Store) Delete(id string) error {
	ctx, cancel := s.op()
	defer cancel()
	if err := s.remove(ctx, id, nil); err != nil {
		return fmt.Errorf("deleting event %s: %w", id, err)
	}
	return nil
}

// remove deletes event id if keep (nil: always) says so of its state.
// Once the state is gone the event is gone: its request, waiting retry,
// count and dedupe key are cleaned up as far as NATS answers (a leftover
// request message is garbage, never an event).
func (s *Store) remove(ctx context.Context, id string, keep func(r *record) bool) error {
	for range maxConflicts {
		r, rev, err := s.getRecord(ctx, id)
		if err != nil {
			return err
		}
		if keep != nil && !keep(r) {
			return nil
		}
		if err := s.events.Purge(ctx, id, jetstream.LastRevision(rev)); conflict(err) {
			continue // changed meanwhile: read it again
		} else if err != nil {
			return err
		}
		s.eventsStream.Purge(ctx, jetstream.WithPurgeSubject(s.eventsSubject+id+".req"))
		if r.State == store.Pending {
			s.purgeSchedule(ctx, r.Inbox, id)
			s.addPending(ctx, r.Inbox, -1, 0)
		}
		if r.DedupeKey != "" {
			s.dropDedupe(ctx, dedupeKey(r.Inbox, r.DedupeKey), id)
		}
		return nil
	}
	return fmt.Errorf("event %s: %w %d times", id, errConflict, maxConflicts)
}

// sweep removes finished events past the retention and corrects the
// pending counts, now and every sweepEvery.
func (s *Store) sweep() {
	defer s.bg.Done()
	t := time.NewTicker(s.opts.sweepEvery)
	defer t.Stop()
	var seen map[string]jetstream.KeyValueEntry // the counts the last sweep read
	stopped, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		<-s.stop
		stop()
	}()
	for {
		ctx, cancel := context.WithTimeout(stopped, scanTimeout)
		counts := s.readCounts(ctx)
		pending := map[string]int{}
		var old []string
		retention := time.Duration(s.retention.Load())
		cutoff := time.Now().Add(-retention)
		err := s.scan(ctx, func(r *record) {
			if r.State == store.Pending {
				pending[token(r.Inbox)]++
			} else if retention > 0 && r.FinishedAt.Before(cutoff) {
				old = append(old, r.ID)
			}
		})
		for _, id := range old {
			s.remove(ctx, id, func(r *record) bool {
				return r.State != store.Pending && r.FinishedAt.Before(cutoff)
			})
		}
		if err == nil && counts != nil {
			s.recount(ctx, seen, counts, pending)
			seen = counts
		}
		cancel()
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// readCounts reads every inbox's pending count; nil if it cannot.
func (s *Store) readCounts(ctx context.Context) map[string]jetstream.KeyValueEntry {
	keys, err := s.counts.ListKeys(ctx)
	if err != nil {
		return nil
	}
	counts := map[string]jetstream.KeyValueEntry{}
	for key := range keys.Keys() {
		entry, err := s.counts.Get(ctx, key)
		if err != nil {
			return nil
		}
		counts[key] = entry
	}
	return counts
}

// recount sets a pending count to the pending events the scan found when
// they differ: a node that died between counting an event and storing it
// (or between finishing one and counting that) left the count off. It
// does so only for a count that has not changed since the last sweep (seen):
// no enqueue or record was then under way, nor during the scan, which
// started after that reading (a compare-and-set on its revision), so the
// scan saw what the count should say.
func (s *Store) recount(ctx context.Context, seen, counts map[string]jetstream.KeyValueEntry, pending map[string]int) {
	for key, entry := range counts {
		last, ok := seen[key]
		if !ok || last.Revision() != entry.Revision() {
			continue
		}
		n, _ := strconv.Atoi(string(entry.Value()))
		if n == pending[key] {
			continue
		}
		// A conflict: it changed meanwhile; the next sweeps look again.
		s.counts.Update(ctx, key, []byte(strconv.Itoa(pending[key])), entry.Revision())
	}
}
