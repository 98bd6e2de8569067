package deliver

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/hookinbox/hookinbox/internal/store"
	"github.com/hookinbox/hookinbox/internal/throttle"
)

// claimErrorWait is how long a dispatcher waits before claiming again after
// the store failed to answer, so a broken store is not spun on.
const claimErrorWait = time.Second

// A record the store could not write is tried again after recordRetryMin,
// doubling up to recordRetryMax.
const (
	recordRetryMin = time.Second
	recordRetryMax = 30 * time.Second
)

// errorLogEvery: an inbox logs a store that keeps failing once per this.
const errorLogEvery = 10 * time.Second

// inbox is one inbox's dispatcher and the state its attempts share.
type inbox struct {
	svc      *Service
	name     string
	settings atomic.Pointer[settings]
	breaker  *breaker

	// running counts this inbox's attempts in flight: the dispatcher adds,
	// the attempts subtract when they are done.
	running atomic.Int64
	// recording counts the attempts that are over (their slot is free)
	// but not recorded yet; unrecorded, those of them the store failed to
	// record. While any is unrecorded nothing new is claimed, and no more
	// are claimed than there are slots while as many records are
	// outstanding: when the store starts failing, at most that many more
	// attempts are made before delivery stops.
	recording  atomic.Int64
	unrecorded atomic.Int64
	errorLog   *throttle.Every

	// changed (new settings) and finished (an attempt is done) wake the
	// dispatcher. Capacity 1: one pending signal is as good as many, since
	// the dispatcher looks at the whole state when it wakes.
	changed  chan struct{}
	finished chan struct{}
	// quit is closed to end the current dispatcher (the inbox is no longer
	// configured, or the service stops); ran is closed once it has ended.
	// Both belong to the Service and are guarded by its mutex; the
	// dispatcher gets its own quit as an argument.
	quit, ran chan struct{}
}

func newInbox(s *Service, name string, set *settings) *inbox {
	in := &inbox{
		svc:      s,
		name:     name,
		breaker:  newBreaker(s.breakerThreshold, s.breakerCooldown, s.breakerMaxCooldown),
		changed:  make(chan struct{}, 1),
		finished: make(chan struct{}, 1),
		errorLog: throttle.New(errorLogEvery),
	}
	in.settings.Store(set)
	return in
}

// setSettings swaps in new settings; the next claim and the next attempt
// use them (an attempt in flight keeps the ones it started with).
func (in *inbox) setSettings(set *settings) {
	in.settings.Store(set)
	signal(in.changed)
}

// signal wakes whoever waits on c without ever blocking the sender.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// run is the dispatcher: it claims what may be started now, then sleeps
// until something can change that: an event becomes due (the store's wake,
// or the timer for the next due time), an attempt finishes, the breaker's
// cooldown ends, or the settings change.
func (in *inbox) run(quit <-chan struct{}) {
	wake := in.svc.queue.Wake(in.name)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-quit:
			return
		default:
		}
		if at := in.dispatch(quit); at.IsZero() {
			timer.Stop()
		} else {
			timer.Reset(time.Until(at))
		}
		select {
		case <-quit:
			return
		case <-wake:
		case <-in.changed:
		case <-in.finished:
		case <-timer.C:
		}
	}
}

// dispatch starts attempts up to the limit of the settings and the breaker.
// It returns when to look again without being signalled: the next due time,
// the end of the breaker's cooldown, or zero for never.
func (in *inbox) dispatch(quit <-chan struct{}) time.Time {
	set := in.settings.Load()
	if set.forward == nil {
		return time.Time{}
	}
	limit := int64(set.Concurrency)
	bl, until, halfOpened := in.breaker.allow(time.Now())
	if halfOpened {
		in.svc.log().Info("circuit breaker half open; probing with one event", zap.String("inbox", in.name))
	}
	if bl == 0 {
		return until
	}
	if bl > 0 && int64(bl) < limit {
		limit = int64(bl)
	}
	// A record ending wakes the dispatcher (finished).
	for in.running.Load() < limit && in.recording.Load() < limit && in.unrecorded.Load() == 0 {
		select {
		case <-quit:
			return time.Time{}
		default:
		}
		now := time.Now()
		id, next, err := in.svc.queue.Lease(in.name, now, set.Ordered)
		if err != nil {
			in.storeError("claiming an event", err)
			return now.Add(claimErrorWait)
		}
		if id == "" {
			if !next.IsZero() && !next.After(now) {
				// Due, yet not handed out (another lease holds the line):
				// look again soon rather than spin on the store.
				return now.Add(time.Millisecond)
			}
			return next
		}
		in.start(id)
	}
	return time.Time{}
}

// start runs one attempt at leased event id on a worker goroutine. The
// event is read there, not by the dispatcher: the dispatcher only leases,
// one event after another, and reading the body in parallel keeps it
// from being the limit of the delivery rate.
func (in *inbox) start(id string) {
	s := in.svc
	in.running.Add(1)
	s.running.Add(1)
	s.attempts.Add(1)
	s.workers.run(func() {
		defer s.attempts.Done()
		var once sync.Once
		done := func() {
			once.Do(func() {
				in.running.Add(-1)
				s.running.Add(-1)
				signal(in.finished)
			})
		}
		defer done()
		e, err := s.queue.Load(id, time.Now())
		if err != nil {
			in.storeError("reading an event to deliver", err, zap.String("id", id))
			// Keep the slot and the lease a moment, so a failing store is
			// not spun on.
			select {
			case <-time.After(claimErrorWait):
			case <-s.ctx.Done():
			}
			s.queue.Release(id)
			return
		}
		if e == nil {
			return // finished meanwhile: nothing to do
		}
		in.deliver(e, done)
	})
}

// deliver makes one attempt at e, records it and tells the hooks. It calls
// done as soon as the application has answered and the breaker has heard
// of it, before the record is committed: the slot goes to the next event
// while the store batches this record with others into one fsync. The
// event stays leased until its record is committed, so it cannot be
// claimed twice, and an ordered inbox's next event waits for it.
func (in *inbox) deliver(e *store.Event, done func()) {
	s := in.svc
	set := in.settings.Load()
	if set.forward == nil {
		s.queue.Release(e.ID)
		return
	}

	res := s.attempt(s.ctx, set, e)
	a := res.attempt
	// The logger is made only for a line that is written: With encodes its
	// fields at once, and a delivered event's line is at debug level.
	log := func() *zap.Logger {
		return s.log().With(zap.String("inbox", in.name), zap.String("id", e.ID), zap.Int("attempt", a.N))
	}
	if res.cancelled {
		// Stopping: this was no attempt of the application's making, so it
		// is not recorded and the event is delivered again after the restart.
		s.queue.Release(e.ID)
		log().Info("delivery cancelled by shutdown; released for redelivery")
		return
	}

	next := schedule(set, e.Attempts-e.ReplayedAfter, a, res.retryAfter, time.Now())
	transition := in.breaker.record(a.Outcome, time.Now())
	in.recording.Add(1)
	done()
	stored := in.record(e.ID, a, next)
	if stored == nil {
		return
	}
	e = stored

	fields := func() []zap.Field {
		f := []zap.Field{
			zap.String("outcome", a.Outcome),
			zap.Int("status", a.Status),
			zap.Duration("duration", a.Duration),
		}
		if a.Error != "" {
			f = append(f, zap.String("error", a.Error))
		}
		return f
	}
	switch {
	case e.State == store.Delivered:
		if s.log().Core().Enabled(zap.DebugLevel) {
			log().Debug("delivered", fields()...)
		}
	case e.State == store.Dead:
		log().Error("delivery failed; no attempt left, event is dead", fields()...)
	case a.Outcome == store.OutcomeOK:
		log().Info("delivered; it was replayed meanwhile, so it goes again", fields()...)
	default:
		log().Warn("delivery failed; will retry", append(fields(), zap.Time("retry_at", e.NextAttemptAt))...)
	}

	if h := s.hooks.Attempt; h != nil {
		h(in.name, e, a)
	}
	if h := s.hooks.Delivered; h != nil && e.State == store.Delivered {
		h(in.name, e)
	}
	if h := s.hooks.Dead; h != nil && e.State == store.Dead {
		h(in.name, e)
	}

	switch transition {
	case opened:
		log().Warn("application looks down; circuit breaker open",
			zap.Int("failures", in.breaker.state().Failures), zap.Time("until", in.breaker.reopenAt()))
		if h := s.hooks.Breaker; h != nil {
			h(in.name, true)
		}
	case reopened:
		log().Warn("probe failed; circuit breaker open again", zap.Time("until", in.breaker.reopenAt()))
	case closed:
		log().Info("application answers again; circuit breaker closed")
		if h := s.hooks.Breaker; h != nil {
			h(in.name, false)
		}
	}
}

// record stores attempt a of leased event id with what happens next, and
// returns the event as stored; nil if it was deleted meanwhile or the
// service stopped first.
//
// While the store cannot write the record, the event stays leased and the
// record is tried again: released, the event would be due at once, on a
// schedule the store never saw, and the app would get it again and again
// as fast as it answers. The inbox claims nothing new meanwhile: no
// attempt is made that could not be recorded.
func (in *inbox) record(id string, a store.Attempt, next store.Next) *store.Event {
	s := in.svc
	wait, held := recordRetryMin, false
	defer func() {
		if held {
			in.unrecorded.Add(-1)
		}
		in.recording.Add(-1)
		signal(in.finished)
	}()
	for {
		e, err := s.queue.Record(id, a, next)
		if err == nil {
			return e
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil // deleted while in flight: nothing left to record
		}
		if !held {
			held = true
			in.unrecorded.Add(1)
		}
		in.storeError("recording an attempt; this inbox claims nothing until the store records again", err,
			zap.String("id", id), zap.String("outcome", a.Outcome))
		select {
		case <-time.After(wait):
		case <-s.ctx.Done():
			// Stopping: the event is pending in the store and is
			// delivered again after the restart.
			s.queue.Release(id)
			return nil
		}
		wait = min(2*wait, recordRetryMax)
	}
}

// storeError logs a failure of the store, at most once per errorLogEvery
// for the inbox: a failing store fails every claim and every record.
func (in *inbox) storeError(msg string, err error, fields ...zap.Field) {
	ok, held := in.errorLog.Allow(time.Now())
	if !ok {
		return
	}
	fields = append(fields, zap.String("inbox", in.name), zap.Error(err))
	if held > 0 {
		fields = append(fields, zap.Int64("errors_not_logged", held))
	}
	in.svc.log().Error(msg, fields...)
}
