package deliver

import (
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/hookinbox/hookinbox/internal/store"
)

// Records wait to be committed together. Each commit of the store costs an
// fdatasync and a fixed amount of work besides, whatever it holds; at a
// small concurrency, records sent as soon as their attempts were over went
// one or three to a commit. So an attempt's record waits for the other
// attempts in flight: a batch is committed when it holds as many records
// as the inbox may have in flight (the dispatcher's limit); when the
// dispatcher has nothing more to start (nothing due, the breaker open, the
// inbox gone) and no other attempt is in flight to join it; or when its
// first record has waited recordWait, for attempts that take long. Each
// record still returns only once committed, and the inbox claims nothing
// while as many records as its limit are outstanding, waiting or being
// committed.

// defaultRecordWait bounds how long a record waits for other attempts to
// join its commit.
const defaultRecordWait = 10 * time.Millisecond

// batchRecorder is a queue that records several attempts in one commit.
// A queue without it gets each record as soon as its attempt is over.
type batchRecorder interface {
	RecordAll(rs []store.Recording) error
}

// answered is an attempt that is over, waiting for its record.
type answered struct {
	e          *store.Event // as loaded
	a          store.Attempt
	next       store.Next
	transition transition
}

// batchLimit is how many records make a batch when the dispatcher may have
// limit attempts in flight. At most maxRecordBatch: with many attempts in
// flight the store's writer already gathers their records into few
// commits, and a batch as large as the limit would stop the dispatcher
// until it is full, delivering in bursts.
func (in *inbox) batchLimit(limit int64) int64 {
	if _, ok := in.svc.queue.(batchRecorder); !ok {
		return 1
	}
	return min(max(limit, 1), maxRecordBatch)
}

const maxRecordBatch = 16

// wait adds r, whose attempt still counts as running, to the records
// waiting for a commit, and returns the batch to record now if r completes
// one; nil: r waits for others.
func (in *inbox) wait(r answered) []answered {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.waiting) == 0 {
		in.waitingSince = time.Now()
	}
	in.waiting = append(in.waiting, r)
	last := in.idle && in.running.Load() == 1
	if in.gone || last || int64(len(in.waiting)) >= in.batchMax.Load() {
		return in.takeWaiting()
	}
	return nil
}

// flush is the dispatcher's look at the waiting records after a dispatch:
// idle, it starts nothing more for now. It records them, on a worker, if
// they are a whole batch, have waited long enough, or idle with no other
// attempt in flight to join them; while one is, the last to end records
// them (wait). Otherwise it returns when they will have waited long enough.
func (in *inbox) flush(idle bool, now time.Time) time.Time {
	in.mu.Lock()
	in.idle = idle
	if len(in.waiting) == 0 {
		in.mu.Unlock()
		return time.Time{}
	}
	until := in.waitingSince.Add(in.svc.recordWait)
	if !(idle && in.running.Load() == 0) && int64(len(in.waiting)) < in.batchMax.Load() && now.Before(until) {
		in.mu.Unlock()
		return until
	}
	batch := in.takeWaiting()
	in.mu.Unlock()
	in.svc.workers.run(func() { in.recordBatch(batch) })
	return time.Time{}
}

// leave is the dispatcher's last act: what waits is recorded at once, and
// so is each record from now until a dispatcher runs again.
func (in *inbox) leave() {
	in.mu.Lock()
	in.gone = true
	batch := in.takeWaiting()
	in.mu.Unlock()
	if batch != nil {
		in.svc.workers.run(func() { in.recordBatch(batch) })
	}
}

// takeWaiting returns the waiting records and empties the list. in.mu is held.
func (in *inbox) takeWaiting() []answered {
	batch := in.waiting
	in.waiting = nil
	return batch
}

// recordBatch records the attempts of batch, then logs them and tells the
// hooks. Each attempt counted in recording and in the service's attempts
// until then.
func (in *inbox) recordBatch(batch []answered) {
	s := in.svc
	rs := make([]store.Recording, len(batch))
	for i, r := range batch {
		rs[i] = store.Recording{ID: r.e.ID, Attempt: r.a, Next: r.next}
	}
	in.record(rs)
	in.recording.Add(-int64(len(batch)))
	signal(in.finished)
	for i, r := range batch {
		if rs[i].Stored != nil {
			in.recorded(r, rs[i].Stored)
		}
		s.attempts.Done()
	}
}

// record stores the attempts of leased events rs; each ends with Stored
// set, or nil if its event was deleted meanwhile or the service stopped
// first.
//
// While the store cannot write the records, the events stay leased and the
// records are tried again: released, an event would be due at once, on a
// schedule the store never saw, and the app would get it again and again
// as fast as it answers. The inbox claims nothing new meanwhile: no
// attempt is made that could not be recorded.
func (in *inbox) record(rs []store.Recording) {
	s := in.svc
	wait, held := recordRetryMin, int64(0)
	defer func() { in.unrecorded.Add(-held) }()
	for {
		err := recordAll(s.queue, rs)
		if err == nil {
			return
		}
		if held == 0 {
			held = int64(len(rs))
			in.unrecorded.Add(held)
		}
		in.storeError("recording an attempt; this inbox claims nothing until the store records again", err,
			zap.String("id", rs[0].ID), zap.String("outcome", rs[0].Attempt.Outcome), zap.Int("attempts", len(rs)))
		select {
		case <-time.After(wait):
		case <-s.ctx.Done():
			// Stopping: the events are pending in the store and are
			// delivered again after the restart.
			for i := range rs {
				if rs[i].Stored == nil && !errors.Is(rs[i].Err, store.ErrNotFound) {
					s.queue.Release(rs[i].ID)
				}
			}
			return
		}
		wait = min(2*wait, recordRetryMax)
	}
}

// recordAll records rs in one commit if the queue can, or each in turn,
// skipping those an earlier call recorded. It returns the first error but
// store.ErrNotFound, which ends a record (its event was deleted).
func recordAll(q Queue, rs []store.Recording) error {
	if b, ok := q.(batchRecorder); ok {
		return b.RecordAll(rs)
	}
	var first error
	for i := range rs {
		r := &rs[i]
		if r.Stored != nil || errors.Is(r.Err, store.ErrNotFound) {
			continue
		}
		r.Stored, r.Err = q.Record(r.ID, r.Attempt, r.Next)
		if r.Err != nil && !errors.Is(r.Err, store.ErrNotFound) && first == nil {
			first = r.Err
		}
	}
	return first
}

// recorded logs attempt r, stored as e, and tells the hooks.
func (in *inbox) recorded(r answered, e *store.Event) {
	s := in.svc
	a := r.a
	// The logger is made only for a line that is written: With encodes its
	// fields at once, and a delivered event's line is at debug level.
	log := func() *zap.Logger {
		return s.log().With(zap.String("inbox", in.name), zap.String("id", e.ID), zap.Int("attempt", a.N))
	}
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

	switch r.transition {
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
