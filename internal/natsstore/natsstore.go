// Package natsstore is the store of several hookinbox nodes: every inbox's
// queue, retry schedule, dedupe keys and history kept in NATS JetStream, so
// that any node takes any inbox's webhooks and any node delivers them
// (SPEC.md, "Stores: one node, or several"). It keeps the promises of
// store.Store, checked by internal/storetest.
//
// What it keeps, under a prefix p (default "hookinbox"; P is it upper-cased):
//
//   - bucket P_EVENTS (stream KV_P_EVENTS): per event id, key <id> is its
//     state as JSON (state, attempts and their records, next attempt,
//     replayed-after, finished-at, the lease) and key <id>.req its request
//     as received (the body as the value, the HTTP header in a message
//     header); key d.<sha256 of inbox and sender key> is a dedupe key,
//     naming the event, with a per-key TTL of the window. Every transition
//     of a state is a compare-and-set on the key's revision, so two nodes
//     never both apply one: a lease is a transition too. File storage, no
//     age limit: it is the history, and a pending event must outlive any
//     MaxAge; finished events are removed by the retention sweep.
//   - Enqueue writes an event's dedupe key (made only if absent), request
//     and state (made only if absent) in one atomic batch (the stream
//     allows atomic publish): one raft proposal instead of three, and no
//     dedupe key can name an event that was never stored. It waits for the
//     batch's PubAck, so a 200 means the event is on `replicas` servers (on
//     their disks with sync_interval: always). Dedupe keys are never
//     Nats-Msg-Id: its window lives in every replica's memory and is
//     rebuilt from the stream at restart.
//   - bucket P_COUNTS: per inbox, how many events are pending (max_pending
//     is checked against it with compare-and-set, so it holds across nodes).
//   - stream P_DUE (WorkQueue, message schedules allowed): the due work.
//     p.due.<inbox> holds one message per event that may be attempted now
//     (its id and its generation, which the state names: a message of an
//     older generation is stale and dropped). A retry is a schedule message
//     on p.sched.<inbox>.<id>.<due in unix ns> targeting p.due.<inbox>: a
//     waiting retry holds no MaxAckPending slot.
//
// An unordered inbox has one durable pull consumer on p.due.<inbox>,
// AckExplicit, MaxAckPending its concurrency (so the bound holds across the
// cluster), AckWait the lease TTL. A lease is a fetched message plus the
// lease written into the event's state (by Load, on the attempt's own
// goroutine: a replicated write per event would bound the dispatcher,
// which leases one event after another). A fetch takes as many messages as
// the node has free slots for, since each fetch waits for a quorum write
// of the consumer's state. While the attempt runs the node
// refreshes both (InProgress, and the state's lease), so AckWait can be
// shorter than the app's timeout without a second delivery, and a node that
// dies mid-attempt stops refreshing: the message comes back after AckWait
// and the state's lease has expired, so another node takes it.
//
// An ordered inbox has no consumer: its head is the first message on
// p.due.<inbox> (a direct get, next by subject), leased by writing the lease
// into its state; a failed head keeps its message and waits for its retry
// in its state, so it holds the line. Arrival order is the stream's order,
// the same on every node.
//
// The interface's Lease takes a now that may be ahead of the clock (tests,
// and the dispatcher's timers): a retry due by then but scheduled later in
// JetStream's time is pulled forward (its schedule purged, its due message
// published at once). Lease finds the waiting retries from the due stream's
// per-subject counts, which name the due times: no message is read.
//
// Wake-ups: every node subscribes (core NATS) to p.due.* and p.wake.*: a
// due message published by any node, or a lease ended on any node, wakes
// that inbox's dispatcher; what sends no signal (a schedule fired inside
// the server, a lease expired on a dead node, a Nak's delay) is found by a
// poll every 250 ms.
//
// Listings, inbox counts and bulk replays scan the event bucket: their cost
// grows with the events kept (a first version; an index per inbox and state
// is the next step).
package natsstore

import (
	"context"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/hookinbox/hookinbox/internal/store"
)

// Options configure a Store.
type Options struct {
	// Prefix names its streams, buckets and subjects; default "hookinbox".
	Prefix string
	// Replicas of every stream and bucket; default 1 (the Caddy module
	// applies SPEC's default of 3).
	Replicas int
	// Retention: how long delivered and dead events stay in history. Zero
	// or less keeps them until they are deleted.
	Retention time.Duration
	// LeaseTTL is how long a lease outlives a node that stopped refreshing
	// it (the consumers' AckWait); default 15s. A dead node's deliveries
	// are taken over after it.
	LeaseTTL time.Duration
	// Timeout bounds each call to NATS; default 5s. Enqueue without NATS
	// or without a quorum fails after it, never succeeds.
	Timeout time.Duration
	// Faults, if set (tests), makes steps fail on demand:
	// store.StepJournalWrite fails Enqueue's publish, store.StepRecord
	// fails Record.
	Faults *store.Faults

	// sweepEvery overrides the const of that name (tests).
	sweepEvery time.Duration
}

// Store is a store.Store on JetStream. Its methods are safe for concurrent use.
type Store struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	opts   Options
	prefix string
	faults *store.Faults

	due    jetstream.Stream
	events jetstream.KeyValue
	// eventsStream is the events bucket's stream, for the atomic batches
	// and the requests' headers.
	eventsStream  jetstream.Stream
	eventsSubject string // the bucket's subject prefix: $KV.<bucket>.
	counts        jetstream.KeyValue

	// node makes this process's lease holders unique in the cluster.
	node      string
	retention atomic.Int64 // time.Duration
	ids       store.IDSource

	subs []*nats.Subscription
	stop chan struct{}
	bg   sync.WaitGroup

	// consumerMu: one consumer creation at a time.
	consumerMu sync.Mutex

	mu          sync.Mutex
	leases      map[string]*lease
	fetched     map[string][]fetchedMsg // by inbox: due messages fetched, not yet leased
	consumers   map[string]jetstream.Consumer
	concurrency map[string]int
	counters    map[string]*pendingCounter // by inbox: addPending
	wakes       map[string]chan struct{}   // by subject token
	leaseSeq    uint64
	closed      bool
}

// defaultConcurrency is an unconfigured inbox's MaxAckPending (JetStream's own default).
const defaultConcurrency = 1000

// Open creates or updates the streams and buckets under opts.Prefix on the
// JetStream nc reaches and returns the store. nc stays the caller's: Close
// does not close it.
func Open(ctx context.Context, nc *nats.Conn, opts Options) (*Store, error) {
	if opts.Prefix == "" {
		opts.Prefix = "hookinbox"
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 15 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.sweepEvery <= 0 {
		opts.sweepEvery = sweepEvery
	}
	for _, r := range opts.Prefix {
		if !safeRune(r) || r == '_' {
			return nil, fmt.Errorf("nats store prefix %q: use letters, digits and '-' only", opts.Prefix)
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("opening JetStream: %w", err)
	}
	P := strings.ToUpper(strings.ReplaceAll(opts.Prefix, "-", "_"))
	s := &Store{
		nc: nc, js: js, opts: opts, prefix: opts.Prefix, faults: opts.Faults,
		node:        ulid.Make().String(),
		stop:        make(chan struct{}),
		leases:      map[string]*lease{},
		fetched:     map[string][]fetchedMsg{},
		consumers:   map[string]jetstream.Consumer{},
		concurrency: map[string]int{},
		counters:    map[string]*pendingCounter{},
		wakes:       map[string]chan struct{}{},
	}
	s.retention.Store(int64(opts.Retention))
	ctx, cancel := context.WithTimeout(ctx, 4*opts.Timeout)
	defer cancel()
	err = placed(ctx, func(ctx context.Context) (err error) {
		s.due, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:              P + "_DUE",
			Subjects:          []string{s.prefix + ".due.*", s.prefix + ".sched.*.*.*"},
			Storage:           jetstream.FileStorage,
			Retention:         jetstream.WorkQueuePolicy,
			Replicas:          opts.Replicas,
			AllowMsgSchedules: true,
			AllowRollup:       true,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating stream %s_DUE with %d replicas: %w", P, opts.Replicas, err)
	}
	bucket := func(name string, ttl time.Duration) (jetstream.KeyValue, error) {
		var kv jetstream.KeyValue
		err := placed(ctx, func(ctx context.Context) (err error) {
			kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket:         P + "_" + name,
				Storage:        jetstream.FileStorage,
				Replicas:       opts.Replicas,
				History:        1,
				LimitMarkerTTL: ttl,
			})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("creating bucket %s_%s with %d replicas: %w", P, name, opts.Replicas, err)
		}
		return kv, nil
	}
	if err := placed(ctx, func(ctx context.Context) error { return s.openEvents(ctx, js, P+"_EVENTS") }); err != nil {
		return nil, fmt.Errorf("creating bucket %s_EVENTS with %d replicas: %w", P, opts.Replicas, err)
	}
	if s.counts, err = bucket("COUNTS", 0); err != nil {
		return nil, err
	}
	// New due messages (from any node) and ended leases wake this node's
	// dispatchers; a request's own subject is not listened to: its body
	// would travel to every node.
	for _, subject := range []string{s.prefix + ".due.*", s.prefix + ".wake.*"} {
		sub, err := nc.Subscribe(subject, s.onSignal)
		if err != nil {
			s.unsubscribe()
			return nil, fmt.Errorf("subscribing to wake-ups: %w", err)
		}
		s.subs = append(s.subs, sub)
	}
	s.bg.Add(2)
	go s.tick()
	go s.sweep()
	return s, nil
}

// errCodeNoPeers is JetStream's error code for "no suitable peers for
// placement" (nats-server's JSClusterNoPeersErrF), which nats.go does not
// name.
const errCodeNoPeers jetstream.ErrorCode = 10005

// placed runs create until it succeeds or fails for another reason than a
// cluster that is not ready yet: one that cannot place its replicas yet
// ("no suitable peers"), or that does not answer at all while it elects
// its meta leader (nodes that start together). Each try has a few seconds;
// past ctx, the last error stays: replicas more than the servers there are.
func placed(ctx context.Context, create func(ctx context.Context) error) error {
	for {
		try, cancel := context.WithTimeout(ctx, placeTry)
		err := create(try)
		cancel()
		var api *jetstream.APIError
		notReady := errors.As(err, &api) && api.ErrorCode == errCodeNoPeers ||
			errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrNoResponders) ||
			errors.Is(err, jetstream.ErrJetStreamNotEnabled)
		if err == nil || !notReady || ctx.Err() != nil {
			return err
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return err
		}
	}
}

// placeTry bounds one try of creating a stream or a bucket.
const placeTry = 3 * time.Second

// Configure sets an inbox's concurrency: its consumer's MaxAckPending, a
// bound across every node. An inbox not configured gets 1000.
func (s *Store) Configure(inbox string, concurrency int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.concurrency[inbox] != concurrency {
		s.concurrency[inbox] = concurrency
		delete(s.consumers, inbox) // updated at the next lease
	}
}

// SetRetention changes how long finished events are kept.
func (s *Store) SetRetention(d time.Duration) { s.retention.Store(int64(d)) }

// Close stops the store's work: the lease refreshers (their leases expire
// and the events are delivered again), the wake-ups and the sweep.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for id, l := range s.leases {
		close(l.stop)
		delete(s.leases, id)
	}
	// Fetched ahead, never leased: the other nodes may have them now.
	for _, fetched := range s.fetched {
		for _, f := range fetched {
			f.msg.Nak()
		}
	}
	clear(s.fetched)
	s.mu.Unlock()
	close(s.stop)
	err := s.unsubscribe()
	s.bg.Wait()
	return err
}

func (s *Store) unsubscribe() error {
	var errs []error
	for _, sub := range s.subs {
		errs = append(errs, sub.Unsubscribe())
	}
	return errors.Join(errs...)
}

// openEvents creates the events bucket, or opens it, and allows atomic
// batches on its stream, which the key-value API does not set. An existing
// bucket is not created again: that would write its stream's config without
// the flag, and the other nodes' batches would fail until it is set again.
func (s *Store) openEvents(ctx context.Context, js jetstream.JetStream, bucket string) error {
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:   bucket,
			Storage:  jetstream.FileStorage,
			Replicas: s.opts.Replicas,
			History:  1,
			// Dedupe keys expire by a per-key TTL; the marker an expired
			// key leaves lives one second.
			LimitMarkerTTL: time.Second,
		})
	}
	if err != nil {
		return err
	}
	st, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return err
	}
	if cfg := st.CachedInfo().Config; !cfg.AllowAtomicPublish || !cfg.AllowMsgTTL || cfg.Replicas != s.opts.Replicas {
		cfg.AllowAtomicPublish, cfg.AllowMsgTTL, cfg.Replicas = true, true, s.opts.Replicas
		cfg.SubjectDeleteMarkerTTL = max(cfg.SubjectDeleteMarkerTTL, time.Second)
		if st, err = js.UpdateStream(ctx, cfg); err != nil {
			return err
		}
	}
	if cfg := st.CachedInfo().Config; !cfg.AllowAtomicPublish || !cfg.AllowMsgTTL {
		// A server that does not know a setting ignores it.
		return errServerTooOld
	}
	s.events, s.eventsStream, s.eventsSubject = kv, st, "$KV."+bucket+"."
	return nil
}

// errServerTooOld: the servers lack what the store needs (atomic batches,
// per-message TTLs, message schedules).
var errServerTooOld = errors.New("the NATS servers do not support atomic batches and message TTLs: nats-server 2.12 or later is needed")

// op returns a context bounded by the store's timeout.
func (s *Store) op() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.opts.Timeout)
}

// Subjects and keys.

const (
	hdrID     = "Hookinbox-Event"
	hdrGen    = "Hookinbox-Gen"
	hdrHeader = "Hookinbox-Header"
)

var tokenEncoding = base32.HexEncoding.WithPadding(base32.NoPadding)

func safeRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
}

// token is inbox as one subject token (and consumer name): as it is if it
// is made of letters, digits, '-' and '_' and does not start with '_',
// else '_' and its base32.
func token(inbox string) string {
	safe := inbox != "" && inbox[0] != '_'
	for _, r := range inbox {
		safe = safe && safeRune(r)
	}
	if safe {
		return inbox
	}
	return "_" + tokenEncoding.EncodeToString([]byte(inbox))
}

func (s *Store) dueSubject(inbox string) string { return s.prefix + ".due." + token(inbox) }
func (s *Store) wakeSubject(inbox string) string {
	return s.prefix + ".wake." + token(inbox)
}
func (s *Store) schedPrefix(inbox string) string { return s.prefix + ".sched." + token(inbox) + "." }

// State.

// record is an event's state in the events bucket.
type record struct {
	ID            string          `json:"id"`
	Inbox         string          `json:"inbox"`
	ReceivedAt    time.Time       `json:"received_at"`
	Method        string          `json:"method"`
	Path          string          `json:"path"`
	RawQuery      string          `json:"raw_query,omitempty"`
	Verified      string          `json:"verified,omitempty"`
	DedupeKey     string          `json:"dedupe_key,omitempty"`
	State         store.State     `json:"state"`
	Attempts      int             `json:"attempts"`
	ReplayedAfter int             `json:"replayed_after,omitempty"`
	NextAttemptAt time.Time       `json:"next_attempt_at,omitzero"`
	FinishedAt    time.Time       `json:"finished_at,omitzero"`
	History       []store.Attempt `json:"history,omitempty"`
	// Gen is the generation of the event's due message: a due message of
	// another generation is stale.
	Gen uint64 `json:"gen"`
	// Ordered: leased as the head of an ordered inbox, whose due message
	// stays in place through its retries.
	Ordered bool `json:"ordered,omitempty"`
	// Replayed: replayed while an attempt was in flight; the attempt's
	// record makes it due again.
	Replayed bool       `json:"replayed,omitempty"`
	Lease    *leaseMark `json:"lease,omitempty"`
}

// leaseMark is a lease as the cluster sees it.
type leaseMark struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
	// Due is the leased due message's stream sequence.
	Due uint64 `json:"due"`
}

// live tells whether a lease is held now (by the clock, not a test's now).
func (m *leaseMark) live() bool { return m != nil && m.Until.After(time.Now()) }

func (r *record) event() *store.Event {
	e := &store.Event{
		ID: r.ID, Inbox: r.Inbox, ReceivedAt: r.ReceivedAt, Method: r.Method, Path: r.Path,
		RawQuery: r.RawQuery, Verified: r.Verified, DedupeKey: r.DedupeKey, State: r.State,
		Attempts: r.Attempts, ReplayedAfter: r.ReplayedAfter, NextAttemptAt: r.NextAttemptAt,
		FinishedAt: r.FinishedAt,
	}
	if e.State == store.Pending && r.Lease.live() {
		e.State = store.Delivering
	}
	return e
}

// getRecord reads an event's state and its revision; store.ErrNotFound if none.
func (s *Store) getRecord(ctx context.Context, id string) (*record, uint64, error) {
	if _, err := ulid.ParseStrict(id); err != nil {
		return nil, 0, store.ErrNotFound
	}
	entry, err := s.events.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, store.ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	r := new(record)
	if err := json.Unmarshal(entry.Value(), r); err != nil {
		return nil, 0, fmt.Errorf("decoding event %s: %w", id, err)
	}
	return r, entry.Revision(), nil
}

// putRecord writes r if the key is still at rev; errConflict if not.
func (s *Store) putRecord(ctx context.Context, r *record, rev uint64) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = s.events.Update(ctx, r.ID, v, rev)
	if conflict(err) {
		return errConflict
	}
	return err
}

var errConflict = errors.New("changed meanwhile")

// conflict tells a failed compare-and-set from other errors.
func conflict(err error) bool {
	return err != nil && (errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch))
}

// maxConflicts bounds a compare-and-set loop: beyond it a key is hot
// enough that the caller should try later.
const maxConflicts = 64

// update applies change to event id's state with compare-and-set, reading
// it again after each conflict. change returns false to write nothing.
func (s *Store) update(ctx context.Context, id string, change func(r *record) (bool, error)) (*record, error) {
	for range maxConflicts {
		r, rev, err := s.getRecord(ctx, id)
		if err != nil {
			return nil, err
		}
		write, err := change(r)
		if err != nil || !write {
			return r, err
		}
		if err := s.putRecord(ctx, r, rev); errors.Is(err, errConflict) {
			continue
		} else if err != nil {
			return nil, err
		}
		return r, nil
	}
	return nil, fmt.Errorf("event %s: %w %d times", id, errConflict, maxConflicts)
}

// scan calls fn with every event's state.
func (s *Store) scan(ctx context.Context, fn func(r *record)) error {
	// "*": the states only, not the requests (<id>.req) nor the dedupe
	// keys (d.<hash>).
	w, err := s.events.Watch(ctx, "*", jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case entry := <-w.Updates():
			if entry == nil {
				return nil
			}
			r := new(record)
			if err := json.Unmarshal(entry.Value(), r); err != nil {
				continue
			}
			fn(r)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

var _ store.Store = (*Store)(nil)
