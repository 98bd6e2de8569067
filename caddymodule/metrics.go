package caddymodule

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookinbox/hookinbox/internal/deliver"
	"github.com/hookinbox/hookinbox/internal/store"
)

// metrics are hookinbox's collectors. They are created once per process
// and registered into each config's registry, as Caddy's own are.
type metrics struct {
	received   *prometheus.CounterVec
	accepted   *prometheus.CounterVec
	rejected   *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	attempts   *prometheus.CounterVec
	delivered  *prometheus.CounterVec
	dead       *prometheus.CounterVec
}

var (
	metricsOnce    sync.Once
	sharedMetrics *metrics
)

const ns, sub = "caddy", "hookinbox"

func newMetrics(reg prometheus.Registerer) *metrics {
	metricsOnce.Do(func() {
		counter := func(name, help string, labels ...string) *prometheus.CounterVec {
			return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, labels)
		}
		sharedMetrics = &metrics{
			received:   counter("requests_received_total", "Requests that reached an inbox.", "inbox"),
			accepted:   counter("requests_accepted_total", "Requests stored as new events.", "inbox"),
			rejected:   counter("requests_rejected_total", "Requests refused, by reason code.", "inbox", "reason"),
			duplicates: counter("requests_duplicate_total", "Requests answered as a duplicate of a stored event.", "inbox"),
			attempts:   counter("delivery_attempts_total", "Delivery attempts, by outcome class.", "inbox", "outcome"),
			delivered:  counter("events_delivered_total", "Events the app accepted.", "inbox"),
			dead:       counter("events_dead_total", "Events that used every attempt.", "inbox"),
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
	return []prometheus.Collector{m.received, m.accepted, m.rejected, m.duplicates, m.attempts, m.delivered, m.dead}
}

// deliverHooks counts what the delivery workers do.
func (m *metrics) deliverHooks() deliver.Hooks {
	return deliver.Hooks{
		Attempt: func(inbox string, _ *store.Event, a store.Attempt) {
			m.attempts.WithLabelValues(inbox, a.Outcome).Inc()
		},
		Delivered: func(inbox string, _ *store.Event) { m.delivered.WithLabelValues(inbox).Inc() },
		Dead:      func(inbox string, _ *store.Event) { m.dead.WithLabelValues(inbox).Inc() },
	}
}
