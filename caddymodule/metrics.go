package caddymodule

import (
	"errors"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/hookinbox/hookinbox/internal/deliver"
	"github.com/hookinbox/hookinbox/internal/store"
)

// metrics are hookinbox's collectors, in Caddy's metrics registry (served
// on the admin endpoint's /metrics):
//
//	caddy_hookinbox_requests_received_total{inbox}            requests that reached an inbox
//	caddy_hookinbox_requests_accepted_total{inbox}            stored as new events
//	caddy_hookinbox_requests_rejected_total{inbox,reason}     refused, by reason code
//	caddy_hookinbox_requests_duplicate_total{inbox}           answered as a duplicate
//	caddy_hookinbox_delivery_attempts_total{inbox,outcome}    attempts, by outcome class
//	caddy_hookinbox_delivery_attempt_duration_seconds{inbox}  how long attempts took
//	caddy_hookinbox_events_delivered_total{inbox}             events the app accepted
//	caddy_hookinbox_events_dead_total{inbox}                  events that used every attempt
//	caddy_hookinbox_delivery_latency_seconds{inbox}           from arrival to delivery
//	caddy_hookinbox_events{inbox,state}                       stored events, by state
//	caddy_hookinbox_oldest_pending_age_seconds{inbox}         age of the oldest pending event
//	caddy_hookinbox_breaker_state{inbox,state}                1 for the breaker's state, 0 for the others
//
// The counters and histograms are created once per process and registered
// into each config's registry, as Caddy's own are. The gauges are read from
// the active config's store at scrape time: its counts are kept in memory.
type metrics struct {
	received        *prometheus.CounterVec
	accepted        *prometheus.CounterVec
	rejected        *prometheus.CounterVec
	duplicates      *prometheus.CounterVec
	attempts        *prometheus.CounterVec
	attemptDuration *prometheus.HistogramVec
	delivered       *prometheus.CounterVec
	dead            *prometheus.CounterVec
	latency         *prometheus.HistogramVec
	state           *stateCollector
}

var (
	metricsOnce   sync.Once
	sharedMetrics *metrics
)

const ns, sub = "caddy", "hookinbox"

// latencyBuckets span a delivery at once (milliseconds) to the last retry
// of the default schedule (two days).
var latencyBuckets = []float64{
	.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900,
	3600, 6 * 3600, 12 * 3600, 24 * 3600, 48 * 3600, 72 * 3600,
}

func newMetrics(reg prometheus.Registerer) *metrics {
	metricsOnce.Do(func() {
		counter := func(name, help string, labels ...string) *prometheus.CounterVec {
			return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, labels)
		}
		histogram := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
			return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help, Buckets: buckets}, labels)
		}
		sharedMetrics = &metrics{
			received:        counter("requests_received_total", "Requests that reached an inbox.", "inbox"),
			accepted:        counter("requests_accepted_total", "Requests stored as new events.", "inbox"),
			rejected:        counter("requests_rejected_total", "Requests refused, by reason code.", "inbox", "reason"),
			duplicates:      counter("requests_duplicate_total", "Requests answered as a duplicate of a stored event.", "inbox"),
			attempts:        counter("delivery_attempts_total", "Delivery attempts, by outcome class.", "inbox", "outcome"),
			attemptDuration: histogram("delivery_attempt_duration_seconds", "How long delivery attempts took.", prometheus.DefBuckets, "inbox"),
			delivered:       counter("events_delivered_total", "Events the app accepted.", "inbox"),
			dead:            counter("events_dead_total", "Events that used every attempt.", "inbox"),
			latency:         histogram("delivery_latency_seconds", "Time from an event's arrival to its delivery, retries included.", latencyBuckets, "inbox"),
			state:           newStateCollector(),
		}
	})
	if reg != nil {
		for _, c := range sharedMetrics.collectors() {
			if err := reg.Register(c); err != nil {
				var already prometheus.AlreadyRegisteredError
				if !errors.As(err, &already) {
					panic(err) // a programming error: the names are fixed
				}
			}
		}
	}
	return sharedMetrics
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		m.received, m.accepted, m.rejected, m.duplicates,
		m.attempts, m.attemptDuration, m.delivered, m.dead, m.latency, m.state,
	}
}

// deliverHooks counts what the delivery workers do and emits the Caddy
// events a user may act on. The workers outlive config reloads, so the
// hooks look up the active config each time rather than capture one.
func (m *metrics) deliverHooks() deliver.Hooks {
	return deliver.Hooks{
		Attempt: func(inbox string, e *store.Event, a store.Attempt) {
			m.attempts.WithLabelValues(inbox, a.Outcome).Inc()
			if a.Outcome != store.OutcomeOK {
				throughput.failed(a.At)
			}
			m.attemptDuration.WithLabelValues(inbox).Observe(a.Duration.Seconds())
			if e.State == store.Dead {
				// The Dead hook does not see the last attempt: emit here.
				emitEventDead(inbox, e, a)
			}
		},
		Delivered: func(inbox string, e *store.Event) {
			m.delivered.WithLabelValues(inbox).Inc()
			throughput.delivered(time.Now())
			m.latency.WithLabelValues(inbox).Observe(max(time.Since(e.ReceivedAt), 0).Seconds())
		},
		Dead:    func(inbox string, _ *store.Event) { m.dead.WithLabelValues(inbox).Inc() },
		Breaker: emitBreaker,
	}
}

// stateCollector reports the stored events and the circuit breakers of the
// active config at scrape time.
type stateCollector struct {
	events  *prometheus.Desc
	oldest  *prometheus.Desc
	breaker *prometheus.Desc
}

func newStateCollector() *stateCollector {
	name := func(n string) string { return prometheus.BuildFQName(ns, sub, n) }
	return &stateCollector{
		events: prometheus.NewDesc(name("events"),
			"Stored events, by inbox and state.", []string{"inbox", "state"}, nil),
		oldest: prometheus.NewDesc(name("oldest_pending_age_seconds"),
			"Age of the oldest event waiting for delivery (0 when none is).", []string{"inbox"}, nil),
		breaker: prometheus.NewDesc(name("breaker_state"),
			"The delivery circuit breaker: 1 for its current state, 0 for the others.", []string{"inbox", "state"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.events
	ch <- c.oldest
	ch <- c.breaker
}

// breakerStates are the states BreakerState.State reports.
var breakerStates = []string{"closed", "open", "half_open"}

// Collect implements prometheus.Collector. Without an active hookinbox app
// it reports nothing.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	appIface, err := caddy.ActiveContext().AppIfConfigured("hookinbox")
	if err != nil {
		return
	}
	app, ok := appIface.(*App)
	if !ok || app.engine == nil {
		return
	}
	db := app.engine.store()
	if db == nil {
		return
	}
	views, err := inboxViews(app, db, time.Now())
	if err != nil {
		app.logger.Error("reading inbox statistics for metrics", zap.Error(err))
		return
	}
	for _, v := range views {
		for _, state := range states {
			ch <- prometheus.MustNewConstMetric(c.events, prometheus.GaugeValue, float64(v.Counts[state]), v.Inbox, string(state))
		}
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, v.OldestPendingSeconds, v.Inbox)
		if v.Breaker != nil {
			for _, s := range breakerStates {
				on := 0.0
				if s == v.Breaker.State {
					on = 1
				}
				ch <- prometheus.MustNewConstMetric(c.breaker, prometheus.GaugeValue, on, v.Inbox, s)
			}
		}
	}
}

// Interface guard
var _ prometheus.Collector = (*stateCollector)(nil)
