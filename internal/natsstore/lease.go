package natsstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookinbox/hookinbox/internal/store"
)

// pollEvery: each inbox a dispatcher waits on is woken this often, for what
// sends no signal: a lease that expired on a dead node, a schedule that
// fired, a Nak's delay that ended.
const pollEvery = 250 * time.Millisecond

// lease is one of this node's leases.
type lease struct {
	inbox  string
	holder string
	// msg is the leased due message of an unordered inbox; nil when
	// ordered (its head's message stays until the event is finished).
	msg  jetstream.Msg
	seq  uint64
	stop chan struct{}
	// taken is set once the lease is written into the event's state. An
	// unordered inbox's lease is first only its fetched message: Load
	// writes the state, on the attempt's own goroutine, so the dispatcher
	// does not wait for a quorum write per event it hands out.
	taken atomic.Bool
}

// Wake returns a channel signalled when an event of inbox may have become
// due: a due message published by any node, a lease ended on any node, and
// every pollEvery. A signal may be spurious; Lease tells.
func (s *Store) Wake(inbox string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wakeChan(token(inbox))
}

func (s *Store) wakeChan(tok string) chan struct{} {
	c := s.wakes[tok]
	if c == nil {
		c = make(chan struct{}, 1)
		s.wakes[tok] = c
	}
	return c
}

func (s *Store) wake(tok string) {
	s.mu.Lock()
	c := s.wakes[tok]
	s.mu.Unlock()
	if c != nil {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

func (s *Store) onSignal(m *nats.Msg) {
	if i := strings.LastIndexByte(m.Subject, '.'); i >= 0 {
		s.wake(m.Subject[i+1:])
	}
}

// signalEnd tells every node that a lease of inbox ended.
func (s *Store) signalEnd(inbox string) {
	s.nc.Publish(s.wakeSubject(inbox), nil)
}

func (s *Store) tick() {
	defer s.bg.Done()
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		for _, c := range s.wakes {
			select {
			case c <- struct{}{}:
			default:
			}
		}
		s.mu.Unlock()
	}
}

// Lease leases the next event of inbox due at or before now and returns its
// id; "" and when the next one is due (zero: unknown, or the line is held)
// when none is. ordered: only the inbox's oldest unfinished event, and only
// while no node holds a lease of the inbox.
func (s *Store) Lease(inbox string, now time.Time, ordered bool) (string, time.Time, error) {
	ctx, cancel := s.op()
	defer cancel()
	var id string
	var next time.Time
	var err error
	if ordered {
		id, next, err = s.leaseHead(ctx, inbox, now)
	} else {
		id, next, err = s.leaseDue(ctx, inbox, now)
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("leasing an event of inbox %s: %w", inbox, err)
	}
	return id, next, nil
}

// consumer returns inbox's durable consumer, created or updated to its
// configured concurrency.
func (s *Store) consumer(ctx context.Context, inbox string) (jetstream.Consumer, error) {
	s.consumerMu.Lock()
	defer s.consumerMu.Unlock()
	s.mu.Lock()
	c, conc := s.consumers[inbox], s.concurrency[inbox]
	s.mu.Unlock()
	if c != nil {
		return c, nil
	}
	if conc <= 0 {
		conc = defaultConcurrency
	}
	c, err := s.due.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       "due-" + token(inbox),
		FilterSubject: s.dueSubject(inbox),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.opts.LeaseTTL,
		MaxAckPending: conc,
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.consumers[inbox] = c
	s.mu.Unlock()
	return c, nil
}

// leaseDue fetches inbox's next due message and leases its event.
func (s *Store) leaseDue(ctx context.Context, inbox string, now time.Time) (string, time.Time, error) {
	c, err := s.consumer(ctx, inbox)
	if err != nil {
		return "", time.Time{}, err
	}
	pulled := false
	for range maxConflicts {
		msg, err := s.nextDue(ctx, inbox, c)
		if err != nil {
			return "", time.Time{}, err
		}
		if msg == nil {
			if pulled {
				// Pulled forward, yet not fetched: the consumer holds
				// them (max ack pending); the next wake-up looks again.
				return "", time.Time{}, nil
			}
			n, next, err := s.pullForward(ctx, inbox, now)
			if err != nil || n == 0 {
				return "", next, err
			}
			pulled = true
			continue
		}
		id := msg.Headers().Get(hdrID)
		meta, err := msg.Metadata()
		if err != nil || id == "" || s.leaseOf(id) != nil {
			// Not a due message, or a second one of an event this node
			// holds: settled at once.
			if _, ok, err := s.take(ctx, inbox, msg, now); ok || err != nil {
				return id, time.Time{}, err
			}
			continue
		}
		// A read, not the lease's write (Load's): a message that is not
		// its event's to deliver now is settled here, so that an id
		// Lease returns is one Load delivers, but for a race.
		r, _, err := s.getRecord(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			msg.Ack()
			continue
		}
		if err != nil {
			msg.Nak()
			return "", time.Time{}, err
		}
		if settle := s.settlement(r, msg, meta.Sequence.Stream, now); settle != nil {
			settle()
			continue
		}
		s.hold(id, &lease{inbox: inbox, holder: s.newHolder(), msg: msg, seq: meta.Sequence.Stream})
		return id, time.Time{}, nil
	}
	return "", time.Time{}, nil
}

// nextDue returns inbox's next due message from consumer c, or nil if
// none is due. A fetch from a replicated consumer waits for a quorum
// write, a few milliseconds, and the dispatcher leases one event after
// another: one message a fetch would bound an inbox to a few hundred
// deliveries a second. So a fetch takes as many messages as this node has
// free slots for (its concurrency less the leases it holds), and the next
// leases take them from there, at once.
func (s *Store) nextDue(ctx context.Context, inbox string, c jetstream.Consumer) (jetstream.Msg, error) {
	s.mu.Lock()
	for len(s.fetched[inbox]) > 0 {
		f := s.fetched[inbox][0]
		s.fetched[inbox] = s.fetched[inbox][1:]
		switch age := time.Since(f.at); {
		case age < s.opts.LeaseTTL/2:
			s.mu.Unlock()
			return f.msg, nil
		case age < s.opts.LeaseTTL*3/4:
			// Kept too long (the dispatcher paused): given back while
			// it is surely still this node's.
			f.msg.Nak()
		}
		// Older: it may have gone to another node already; its ack
		// wait ending gives it back.
	}
	n := s.concurrency[inbox]
	if n <= 0 || n > maxFetch {
		n = maxFetch
	}
	for _, l := range s.leases {
		if l.inbox == inbox {
			n--
		}
	}
	s.mu.Unlock()
	msgs, err := fetch(ctx, c, max(n, 1))
	if len(msgs) == 0 {
		return nil, err
	}
	if len(msgs) > 1 {
		now := time.Now()
		s.mu.Lock()
		for _, m := range msgs[1:] {
			s.fetched[inbox] = append(s.fetched[inbox], fetchedMsg{m, now})
		}
		s.mu.Unlock()
	}
	return msgs[0], nil
}

// fetchedMsg is a due message fetched ahead of its lease.
type fetchedMsg struct {
	msg jetstream.Msg
	at  time.Time
}

// maxFetch bounds the messages one fetch takes.
const maxFetch = 64

// fetch fetches up to n messages of c that are there now. A consumer just
// made on a cluster has no leader for a moment (no responders): fetch
// waits for it within ctx.
func fetch(ctx context.Context, c jetstream.Consumer, n int) ([]jetstream.Msg, error) {
	for {
		batch, err := c.FetchNoWait(n)
		var msgs []jetstream.Msg
		if err == nil {
			for m := range batch.Messages() {
				msgs = append(msgs, m)
			}
			if len(msgs) > 0 {
				return msgs, nil
			}
			err = batch.Error()
		}
		if !errors.Is(err, nats.ErrNoResponders) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// take leases the event of due message msg if msg is its current due
// message and it is due by now; else it settles msg (stale: acked; held
// by a live lease or not due: delayed) and returns false.
func (s *Store) take(ctx context.Context, inbox string, msg jetstream.Msg, now time.Time) (string, bool, error) {
	meta, err := msg.Metadata()
	if err != nil {
		msg.Term()
		return "", false, nil
	}
	id := msg.Headers().Get(hdrID)
	l := &lease{inbox: inbox, holder: s.newHolder(), msg: msg, seq: meta.Sequence.Stream}
	r, err := s.writeLease(ctx, id, l, now)
	if err != nil || r == nil {
		return "", false, err
	}
	s.hold(id, l)
	return id, true, nil
}

// writeLease writes lease l of due message l.msg into event id's state if
// l.msg is its current due message and it is due by now, and returns the
// state. Else it settles l.msg (see settlement) and returns nil. On an
// error l.msg is not settled.
func (s *Store) writeLease(ctx context.Context, id string, l *lease, now time.Time) (*record, error) {
	var settle func() error
	r, err := s.update(ctx, id, func(r *record) (bool, error) {
		if settle = s.settlement(r, l.msg, l.seq, now); settle != nil {
			return false, nil
		}
		r.Lease = &leaseMark{Holder: l.holder, Until: time.Now().Add(s.opts.LeaseTTL), Due: l.seq}
		r.Ordered = false
		return true, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, l.msg.Ack()
	}
	if err != nil {
		return nil, err
	}
	if settle != nil {
		return nil, settle()
	}
	l.taken.Store(true)
	return r, nil
}

// settlement is what becomes of due message msg (stream sequence seq) of
// an event whose state is r, when it is not the event's to deliver now:
// nil when it is. A message of an older generation, or a second one of the
// same, is stale: acked. One of a newer generation than the state comes
// from a replay or a record whose state write has not landed yet: looked
// at again shortly (for a while; then taken for the leftover of a write
// that failed). One whose event a live lease holds, or that is not due by
// now, is delayed until then.
func (s *Store) settlement(r *record, msg jetstream.Msg, seq uint64, now time.Time) func() error {
	gen, _ := strconv.ParseUint(msg.Headers().Get(hdrGen), 10, 64)
	switch {
	case gen > r.Gen:
		if meta, err := msg.Metadata(); err == nil && time.Since(meta.Timestamp) < 2*s.opts.Timeout {
			return func() error { return msg.NakWithDelay(100 * time.Millisecond) }
		}
		return msg.Ack
	case r.State != store.Pending || gen < r.Gen:
		return msg.Ack
	case r.Lease.live() && r.Lease.Due == seq:
		// Its holder lives (its lease is fresh) but the message came
		// back: wait for that lease.
		return func() error { return msg.NakWithDelay(time.Until(r.Lease.Until)) }
	case r.Lease.live():
		return msg.Ack // a second due message of the same generation
	case r.NextAttemptAt.After(now):
		return func() error { return msg.NakWithDelay(max(time.Until(r.NextAttemptAt), 0)) }
	}
	return nil
}

// pullForward makes inbox's waiting retries due by now due at once (their
// schedules fire in JetStream's time, which a test's now or a late timer
// may be ahead of). It returns how many it moved and when the next of the
// others is due.
func (s *Store) pullForward(ctx context.Context, inbox string, now time.Time) (int, time.Time, error) {
	prefix := s.schedPrefix(inbox)
	info, err := s.due.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return 0, time.Time{}, err
	}
	var next time.Time
	n := 0
	for subject := range info.State.Subjects {
		id, at, ok := parseSched(strings.TrimPrefix(subject, prefix))
		if !ok {
			continue
		}
		if at.After(now) {
			if next.IsZero() || at.Before(next) {
				next = at
			}
			continue
		}
		moved, err := s.pullOne(ctx, inbox, id)
		if err != nil {
			return n, time.Time{}, err
		}
		if moved {
			n++
		}
	}
	return n, next, nil
}

func parseSched(rest string) (id string, at time.Time, ok bool) {
	id, ns, ok := strings.Cut(rest, ".")
	if !ok {
		return "", time.Time{}, false
	}
	n, err := strconv.ParseInt(ns, 10, 64)
	if err != nil {
		return "", time.Time{}, false
	}
	return id, time.Unix(0, n), true
}

// pullOne replaces event id's schedule with a due message at once. The
// message of the next generation is published before the state names it:
// a node dying in between leaves a stale message, never an event without one.
func (s *Store) pullOne(ctx context.Context, inbox, id string) (bool, error) {
	var gen uint64
	r, err := s.update(ctx, id, func(r *record) (bool, error) {
		if r.State != store.Pending || r.Lease.live() || r.Ordered {
			return false, nil
		}
		if gen != r.Gen+1 {
			gen = r.Gen + 1
			if err := s.publishDue(ctx, inbox, id, gen, time.Time{}); err != nil {
				return false, err
			}
		}
		r.Gen = gen
		return true, nil
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	if err := s.purgeSchedule(ctx, inbox, id); err != nil {
		return false, err
	}
	return r != nil && r.Gen == gen, nil
}

// leaseHead leases the head of an ordered inbox: the first message on its
// due subject, once its event is due and not leased.
func (s *Store) leaseHead(ctx context.Context, inbox string, now time.Time) (string, time.Time, error) {
	subject := s.dueSubject(inbox)
	for range maxConflicts {
		m, err := s.due.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return "", time.Time{}, nil
		}
		if err != nil {
			return "", time.Time{}, err
		}
		id := m.Header.Get(hdrID)
		gen, _ := strconv.ParseUint(m.Header.Get(hdrGen), 10, 64)
		holder := s.newHolder()
		var stale, busy bool
		var due time.Time
		r, err := s.update(ctx, id, func(r *record) (bool, error) {
			stale, busy, due = false, false, time.Time{}
			switch {
			case r.State != store.Pending || r.Gen != gen:
				stale = true
			case r.Lease.live():
				busy = true
			case r.NextAttemptAt.After(now):
				due = r.NextAttemptAt
			}
			if stale || busy || !due.IsZero() {
				return false, nil
			}
			r.Lease = &leaseMark{Holder: holder, Until: time.Now().Add(s.opts.LeaseTTL), Due: m.Sequence}
			r.Ordered = true
			return true, nil
		})
		if errors.Is(err, store.ErrNotFound) {
			stale = true
		} else if err != nil {
			return "", time.Time{}, err
		}
		switch {
		case stale:
			if err := s.due.DeleteMsg(ctx, m.Sequence); err != nil && !alreadyGone(err) {
				return "", time.Time{}, err
			}
			continue
		case busy:
			return "", time.Time{}, nil
		case !due.IsZero():
			return "", due, nil
		}
		l := &lease{inbox: inbox, holder: holder, seq: m.Sequence}
		l.taken.Store(true)
		s.hold(r.ID, l)
		return r.ID, time.Time{}, nil
	}
	return "", time.Time{}, nil
}

func (s *Store) newHolder() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leaseSeq++
	return s.node + "/" + strconv.FormatUint(s.leaseSeq, 10)
}

// hold keeps lease l of event id on this node and refreshes it until it
// ends.
func (s *Store) hold(id string, l *lease) {
	l.stop = make(chan struct{})
	s.mu.Lock()
	if old := s.leases[id]; old != nil {
		close(old.stop)
	}
	s.leases[id] = l
	s.mu.Unlock()
	go s.refresh(id, l)
}

// refresh keeps lease l alive while its attempt runs: InProgress on its
// message (AckWait starts over) and a later Until in the event's state.
func (s *Store) refresh(id string, l *lease) {
	t := time.NewTicker(s.opts.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		if l.msg != nil {
			l.msg.InProgress()
		}
		if !l.taken.Load() {
			continue
		}
		ctx, cancel := s.op()
		r, err := s.update(ctx, id, func(r *record) (bool, error) {
			if r.Lease == nil || r.Lease.Holder != l.holder {
				return false, nil
			}
			r.Lease.Until = time.Now().Add(s.opts.LeaseTTL)
			return true, nil
		})
		cancel()
		if errors.Is(err, store.ErrNotFound) || err == nil && (r.Lease == nil || r.Lease.Holder != l.holder) {
			return // ended or taken over
		}
	}
}

// endLease forgets this node's lease of id and returns it (nil if none).
func (s *Store) endLease(id string) *lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leases[id]
	if l != nil {
		close(l.stop)
		delete(s.leases, id)
	}
	return l
}

func (s *Store) leaseOf(id string) *lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leases[id]
}

// Load reads leased event id with its request, marked delivering; nil, nil
// (and the lease ended) if it was finished or deleted meanwhile. An
// unordered inbox's lease is written into the state here, not by Lease:
// nil, nil too when the fetched due message turns out not to be the
// event's current one, or not due by now. On an error the lease stays;
// the caller releases it.
func (s *Store) Load(id string, now time.Time) (*store.Event, error) {
	ctx, cancel := s.op()
	defer cancel()
	var r *record
	var err error
	if l := s.leaseOf(id); l != nil && !l.taken.Load() {
		r, err = s.writeLease(ctx, id, l, now)
		if err != nil {
			return nil, fmt.Errorf("loading event %s: %w", id, err)
		}
		if r == nil {
			// Not this message's to deliver: settled, the lease ends.
			if s.endLease(id) != nil {
				s.signalEnd(l.inbox)
			}
			return nil, nil
		}
	} else {
		r, _, err = s.getRecord(ctx, id)
	}
	if errors.Is(err, store.ErrNotFound) || err == nil && r.State != store.Pending {
		s.finishLease(ctx, id, nil)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("loading event %s: %w", id, err)
	}
	e := r.event()
	if err := s.readRequest(ctx, r, e); err != nil {
		return nil, fmt.Errorf("loading event %s: %w", id, err)
	}
	e.State = store.Delivering
	return e, nil
}

// finishLease ends this node's lease of id after the event's state no
// longer needs its due message (r nil: finished or gone): acked or deleted.
func (s *Store) finishLease(ctx context.Context, id string, _ *record) {
	l := s.endLease(id)
	if l == nil {
		return
	}
	if l.msg != nil {
		l.msg.Ack()
	} else {
		s.due.DeleteMsg(ctx, l.seq)
	}
	s.signalEnd(l.inbox)
}

// Record stores attempt a of leased event id, applies next and ends the
// lease, and returns the event as stored (without its request). An event
// replayed while its attempt was in flight is pending and due at once
// after the record, whatever next says. When the record cannot be written
// the lease stays (and is kept alive). A deleted event ends the lease and
// returns store.ErrNotFound.
func (s *Store) Record(id string, a store.Attempt, next store.Next) (*store.Event, error) {
	if err := s.faults.Check(store.StepRecord); err != nil {
		return nil, fmt.Errorf("recording attempt of event %s: %w", id, err)
	}
	ctx, cancel := s.op()
	defer cancel()
	l := s.leaseOf(id)
	var keep, finished bool // keep: the leased due message stays the event's
	var published uint64    // the generation of a retry already published
	r, err := s.update(ctx, id, func(r *record) (bool, error) {
		att := a
		if att.N <= 0 {
			att.N = r.Attempts + 1
		}
		r.History = append(r.History, att)
		r.Attempts = max(r.Attempts, att.N)
		r.Lease = nil
		now := time.Now()
		keep, finished = false, false
		switch {
		case r.Replayed:
			r.Replayed = false
			r.ReplayedAfter = r.Attempts
			r.State, r.NextAttemptAt, r.FinishedAt = store.Pending, now, time.Time{}
			if r.Ordered {
				keep = true
				break
			}
			// A new due message rather than a Nak: a Nak is not
			// confirmed, and the next lease must find the event due.
			if published != r.Gen+1 {
				published = r.Gen + 1
				if err := s.publishDue(ctx, r.Inbox, id, published, now); err != nil {
					return false, err
				}
			}
			r.Gen = published
		case next.Delivered || next.Dead:
			r.State, r.NextAttemptAt, r.FinishedAt = store.Delivered, time.Time{}, now
			if next.Dead {
				r.State = store.Dead
			}
			finished = true
		default:
			due := next.RetryAt
			if due.IsZero() {
				due = now
			}
			r.State, r.NextAttemptAt = store.Pending, due
			if r.Ordered {
				keep = true // the head holds the line
				break
			}
			if published != r.Gen+1 {
				published = r.Gen + 1
				if err := s.publishDue(ctx, r.Inbox, id, published, due); err != nil {
					return false, err
				}
			}
			r.Gen = published
		}
		return true, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		s.finishLease(ctx, id, nil)
		return nil, fmt.Errorf("recording attempt of event %s: %w", id, err)
	}
	if err != nil {
		return nil, fmt.Errorf("recording attempt of event %s: %w", id, err)
	}
	if finished {
		s.addPending(ctx, r.Inbox, -1, 0)
	}
	if l != nil {
		s.endLease(id)
		switch {
		case keep:
		case l.msg != nil:
			// Confirmed, so the slot is free for the next lease.
			l.msg.DoubleAck(ctx)
		default:
			s.due.DeleteMsg(ctx, l.seq)
		}
		s.signalEnd(r.Inbox)
	}
	return r.event(), nil
}

// Release ends a lease with no attempt: the event stays due.
func (s *Store) Release(id string) {
	l := s.endLease(id)
	if l == nil {
		return
	}
	ctx, cancel := s.op()
	defer cancel()
	s.update(ctx, id, func(r *record) (bool, error) {
		if r.Lease == nil || r.Lease.Holder != l.holder {
			return false, nil
		}
		r.Lease = nil
		return true, nil
	})
	if l.msg != nil {
		l.msg.Nak()
	}
	s.signalEnd(l.inbox)
}

// alreadyGone tells whether a deletion failed only because the message was
// gone already: another node dropped the same stale message first.
// nats.go wraps the server's "no message found" (10057) and "sequence not
// found" (10043) in ErrMsgDeleteUnsuccessful, with no error code of its own.
func alreadyGone(err error) bool {
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return true
	}
	return errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) &&
		(strings.Contains(err.Error(), "err_code=10057") || strings.Contains(err.Error(), "err_code=10043"))
}
