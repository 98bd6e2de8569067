package deliver

import (
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

	// waiting: attempts over whose records wait to share a commit
	// (record.go), since waitingSince. idle: the dispatcher found nothing
	// more to start when it last looked. gone: no dispatcher runs to flush
	// them, so each is recorded at once. Guarded by mu.
	mu           sync.Mutex
	waiting      []answered
	waitingSince time.Time
	idle, gone   bool
	// batchMax: how many records make a batch; the dispatcher sets it.
	batchMax atomic.Int64

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
	in.batchMax.Store(in.batchLimit(int64(set.Concurrency)))
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
	defer in.leave()
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
		at, idle := in.dispatch(quit)
		if flushAt := in.flush(idle, time.Now()); !flushAt.IsZero() && (at.IsZero() || flushAt.Before(at)) {
			at = flushAt
		}
		if at.IsZero() {
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
// the end of the breaker's cooldown, or zero for never; and idle: it would
// start nothing now even with a free slot, so records waiting for more
// attempts to share their commit wait in vain.
func (in *inbox) dispatch(quit <-chan struct{}) (time.Time, bool) {
	set := in.settings.Load()
	if set.forward == nil {
		return time.Time{}, true
	}
	limit := int64(set.Concurrency)
	bl, until, halfOpened := in.breaker.allow(time.Now())
	if halfOpened {
		in.svc.log().Info("circuit breaker half open; probing with one event", zap.String("inbox", in.name))
	}
	if bl == 0 {
		return until, true
	}
	if bl > 0 && int64(bl) < limit {
		limit = int64(bl)
	}
	in.batchMax.Store(in.batchLimit(limit))
	// A record ending wakes the dispatcher (finished).
	for in.running.Load() < limit && in.recording.Load() < limit && in.unrecorded.Load() == 0 {
		select {
		case <-quit:
			return time.Time{}, true
		default:
		}
		now := time.Now()
		id, next, err := in.svc.queue.Lease(in.name, now, set.Ordered)
		if err != nil {
			in.storeError("claiming an event", err)
			return now.Add(claimErrorWait), true
		}
		if id == "" {
			if !next.IsZero() && !next.After(now) {
				// Due, yet not handed out (another lease holds the line):
				// look again soon rather than spin on the store.
				return now.Add(time.Millisecond), true
			}
			return next, true
		}
		in.start(id)
	}
	return time.Time{}, false
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
		recording := false
		defer func() {
			if !recording {
				s.attempts.Done() // else once recorded
			}
		}()
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
		recording = in.deliver(e, done)
	})
}

// deliver makes one attempt at e and hands it over to be recorded, which
// also logs it and tells the hooks (record.go); it returns whether it did.
// It calls done as soon as the application has answered and the breaker
// has heard of it, before the record is committed: the slot goes to the
// next event while the store batches this record with others into one
// fsync. The event stays leased until its record is committed, so it
// cannot be claimed twice, and an ordered inbox's next event waits for it.
func (in *inbox) deliver(e *store.Event, done func()) bool {
	s := in.svc
	set := in.settings.Load()
	if set.forward == nil {
		s.queue.Release(e.ID)
		return false
	}

	res := s.attempt(s.ctx, set, e)
	a := res.attempt
	if res.cancelled {
		// Stopping: this was no attempt of the application's making, so it
		// is not recorded and the event is delivered again after the restart.
		s.queue.Release(e.ID)
		s.log().Info("delivery cancelled by shutdown; released for redelivery",
			zap.String("inbox", in.name), zap.String("id", e.ID), zap.Int("attempt", a.N))
		return false
	}

	next := schedule(set, e.Attempts-e.ReplayedAfter, a, res.retryAfter, time.Now())
	transition := in.breaker.record(a.Outcome, time.Now())
	in.recording.Add(1)
	batch := in.wait(answered{e: e, a: a, next: next, transition: transition})
	done()
	if batch != nil {
		in.recordBatch(batch)
	}
	return true
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
