package caddymodule

import (
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"go.uber.org/zap"

	"github.com/hookinbox/hookinbox/internal/store"
)

// The Caddy events hookinbox emits, through Caddy's events app, for things
// a user may want to act on (page someone, open a ticket):
//
//	hookinbox.event_dead      {inbox, id, attempts, last_outcome, last_status}
//	                          an event used its last attempt; it can be replayed
//	hookinbox.breaker_opened  {inbox}  the app looks down; deliveries are held back
//	hookinbox.breaker_closed  {inbox}  the app answers again; the backlog drains
//
// The event's origin is the hookinbox app.
const (
	EventDead          = "hookinbox.event_dead"
	EventBreakerOpened = "hookinbox.breaker_opened"
	EventBreakerClosed = "hookinbox.breaker_closed"
)

// Events are handed to one goroutine that emits them in order: the events
// app runs its handlers synchronously, and a slow handler must not hold a
// delivery slot. When the queue is full, events are dropped with a log line.
var emitter struct {
	once  sync.Once
	queue chan caddyEvent
}

type caddyEvent struct {
	name string
	data map[string]any
}

const emitQueue = 1024

func emitEventDead(inbox string, e *store.Event, last store.Attempt) {
	data := map[string]any{
		"inbox":        inbox,
		"id":           e.ID,
		"attempts":     e.Attempts,
		"last_outcome": last.Outcome,
	}
	if last.Status != 0 {
		data["last_status"] = last.Status
	}
	emit(EventDead, data)
}

func emitBreaker(inbox string, open bool) {
	name := EventBreakerClosed
	if open {
		name = EventBreakerOpened
	}
	emit(name, map[string]any{"inbox": inbox})
}

func emit(name string, data map[string]any) {
	emitter.once.Do(func() {
		emitter.queue = make(chan caddyEvent, emitQueue)
		go func() {
			for ev := range emitter.queue {
				emitNow(ev)
			}
		}()
	})
	select {
	case emitter.queue <- caddyEvent{name: name, data: data}:
	default:
		caddy.Log().Named("hookinbox").Warn("too many Caddy events queued; event dropped",
			zap.String("name", name), zap.Any("inbox", data["inbox"]))
	}
}

// emitNow emits ev through the active config's events app, with the
// active hookinbox app as its origin. Without either, there is nobody to
// tell.
func emitNow(ev caddyEvent) {
	appIface, err := caddy.ActiveContext().AppIfConfigured("hookinbox")
	if err != nil {
		return
	}
	app, ok := appIface.(*App)
	if !ok || app.ctx.Context == nil {
		return
	}
	eventsIface, err := app.ctx.AppIfConfigured("events")
	if err != nil {
		return
	}
	if events, ok := eventsIface.(*caddyevents.App); ok {
		events.Emit(app.ctx, ev.name, ev.data)
	}
}
