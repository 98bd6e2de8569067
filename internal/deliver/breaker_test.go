package deliver

import (
	"net/http"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hookinbox/hookinbox/internal/store"
)

func TestBreakerTransitions(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type step struct {
		at      time.Duration
		outcome string // "" means: ask allow
		want    transition
		limit   int
		state   string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"fewer failures than the threshold stay closed", []step{
			{0, store.OutcomeConnect, unchanged, 0, breakerClosed},
			{0, store.OutcomeTimeout, unchanged, 0, breakerClosed},
			{0, "", 0, -1, breakerClosed},
		}},
		{"an answer resets the count", []step{
			{0, store.OutcomeServerError, unchanged, 0, breakerClosed},
			{0, store.OutcomeServerError, unchanged, 0, breakerClosed},
			{0, store.OutcomeClientError, unchanged, 0, breakerClosed},
			{0, store.OutcomeServerError, unchanged, 0, breakerClosed},
			{0, store.OutcomeServerError, unchanged, 0, breakerClosed},
		}},
		{"redirects and 4xx never open it", []step{
			{0, store.OutcomeRedirect, unchanged, 0, breakerClosed},
			{0, store.OutcomeClientError, unchanged, 0, breakerClosed},
			{0, store.OutcomeRedirect, unchanged, 0, breakerClosed},
			{0, store.OutcomeClientError, unchanged, 0, breakerClosed},
		}},
		{"opens, probes, closes", []step{
			{0, store.OutcomeReset, unchanged, 0, breakerClosed},
			{0, store.OutcomeTLS, unchanged, 0, breakerClosed},
			{0, store.OutcomeConnect, opened, 0, breakerOpen},
			{0, store.OutcomeConnect, unchanged, 0, breakerOpen}, // was in flight
			{time.Second - 1, "", 0, 0, breakerOpen},
			{time.Second, "", 0, 1, breakerHalfOpen},
			{time.Second, store.OutcomeOK, closed, 0, breakerClosed},
			{time.Second, "", 0, -1, breakerClosed},
		}},
		{"a failed probe doubles the cooldown up to the cap", []step{
			{0, store.OutcomeConnect, unchanged, 0, breakerClosed},
			{0, store.OutcomeConnect, unchanged, 0, breakerClosed},
			{0, store.OutcomeConnect, opened, 0, breakerOpen},
			{time.Second, "", 0, 1, breakerHalfOpen},
			{time.Second, store.OutcomeTimeout, reopened, 0, breakerOpen},
			{3*time.Second - 1, "", 0, 0, breakerOpen},
			{3 * time.Second, "", 0, 1, breakerHalfOpen},
			{3 * time.Second, store.OutcomeServerError, reopened, 0, breakerOpen},
			{7*time.Second - 1, "", 0, 0, breakerOpen},
			{7 * time.Second, "", 0, 1, breakerHalfOpen},
			{7 * time.Second, store.OutcomeServerError, reopened, 0, breakerOpen},
			{12*time.Second - 1, "", 0, 0, breakerOpen}, // capped at 5s
			{12 * time.Second, "", 0, 1, breakerHalfOpen},
			{12 * time.Second, store.OutcomeClientError, closed, 0, breakerClosed},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBreaker(3, time.Second, 5*time.Second)
			for i, s := range tt.steps {
				if s.outcome == "" {
					if limit, _, _ := b.allow(at(s.at)); limit != s.limit {
						t.Errorf("step %d: allow = %d, want %d", i, limit, s.limit)
					}
				} else if got := b.record(s.outcome, at(s.at)); got != s.want {
					t.Errorf("step %d: record(%s) = %d, want %d", i, s.outcome, got, s.want)
				}
				if st := b.state(); st.State != s.state {
					t.Fatalf("step %d: state %s, want %s", i, st.State, s.state)
				}
			}
		})
	}
}

func TestBreakerReset(t *testing.T) {
	b := newBreaker(1, time.Second, time.Second)
	if b.reset(time.Now()) {
		t.Error("reset of a closed breaker reported a change")
	}
	b.record(store.OutcomeConnect, time.Now())
	if !b.reset(time.Now()) || b.state().State != breakerClosed || b.state().Failures != 0 {
		t.Errorf("reset of an open breaker: %+v", b.state())
	}
}

// TestBreakerEndCooldown: only an open breaker's cooldown can be cut
// short; a half-open one keeps its one probe, a closed one its count.
func TestBreakerEndCooldown(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name     string
		failures int  // connect failures before, threshold 2
		halfOpen bool // then ask allow after the cooldown
		ended    bool
		limit    int // allow's right after endCooldown
		state    string
	}{
		{"closed", 1, false, false, -1, breakerClosed},
		{"open", 2, false, true, 1, breakerHalfOpen},
		{"half open", 2, true, false, 1, breakerHalfOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBreaker(2, time.Minute, time.Minute)
			for range tt.failures {
				b.record(store.OutcomeConnect, t0)
			}
			now := t0.Add(time.Second)
			if tt.halfOpen {
				now = t0.Add(time.Minute)
				b.allow(now)
			}
			if got := b.endCooldown(now); got != tt.ended {
				t.Errorf("endCooldown = %v, want %v", got, tt.ended)
			}
			if limit, _, _ := b.allow(now); limit != tt.limit {
				t.Errorf("allow = %d, want %d", limit, tt.limit)
			}
			if st := b.state(); st.State != tt.state || st.Failures != tt.failures {
				t.Errorf("state %+v, want %s with %d failures", st, tt.state, tt.failures)
			}
		})
	}
}

// fakeApp stands in for the application inside a synctest bubble, where a
// real connection would keep the clock from moving: it answers every
// request with its status at once and notes when it was asked.
type fakeApp struct {
	mu     sync.Mutex
	status int
	asked  []time.Time
}

// serve makes app the transport of s's attempts; call it before Configure.
func (app *fakeApp) serve(s *Service) { s.client.HTTPClient.Transport = app }

func (app *fakeApp) RoundTrip(r *http.Request) (*http.Response, error) {
	app.mu.Lock()
	defer app.mu.Unlock()
	app.asked = append(app.asked, time.Now())
	return &http.Response{StatusCode: app.status, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

func (app *fakeApp) setStatus(code int) {
	app.mu.Lock()
	defer app.mu.Unlock()
	app.status = code
}

func (app *fakeApp) times() []time.Time {
	app.mu.Lock()
	defer app.mu.Unlock()
	return slices.Clone(app.asked)
}

// TestBreakerProbeInterval: while the application stays down, the probes
// come 5 s after the breaker opens, then twice as far apart each time, but
// never more than a minute apart, so that an application back from a long
// outage gets its backlog within a minute.
func TestBreakerProbeInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue(t)
		s := newService(t, q, Hooks{})
		app := &fakeApp{status: http.StatusBadGateway}
		app.serve(s)
		s.Configure([]Inbox{{Name: "in", Forward: "http://app.test/hook", Retry: retries(100, time.Millisecond)}})
		q.add("in", store.Event{})
		time.Sleep(10 * time.Minute)

		asked := app.times()
		const threshold = 5 // failures in a row that open it
		if len(asked) <= threshold {
			t.Fatalf("%d attempts, want the %d that open the breaker and then probes", len(asked), threshold)
		}
		var gaps []time.Duration
		for i := threshold; i < len(asked); i++ {
			gaps = append(gaps, asked[i].Sub(asked[i-1]))
		}
		want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second}
		for range 8 { // after those 75 s, the rest of the 10 minutes a minute apart
			want = append(want, time.Minute)
		}
		if !slices.Equal(gaps, want) {
			t.Errorf("gaps between probes %v, want %v", gaps, want)
		}
	})
}

// TestProbe: Probe (a replay) ends an open breaker's cooldown, so that the
// next event goes out at once as the one probe of a half-open breaker; it
// does nothing to a closed breaker.
func TestProbe(t *testing.T) {
	tests := []struct {
		name     string
		failures int             // 502s in a row before Probe; 5 open the breaker
		retry    []time.Duration // after those
		attempts int             // the attempts wanted right after Probe
	}{
		// The event is due again after a millisecond: only the breaker holds it.
		{"open: the probe goes out at once and closes it", 5, retries(10, time.Millisecond), 6},
		{"closed: nothing changes", 2, retries(10, time.Hour), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				q := newFakeQueue(t)
				s := newService(t, q, Hooks{})
				app := &fakeApp{status: http.StatusBadGateway}
				app.serve(s)
				retry := append(retries(tt.failures-1, time.Millisecond), tt.retry...)
				s.Configure([]Inbox{{Name: "in", Forward: "http://app.test/hook", Concurrency: 1, Retry: retry}})
				id := q.add("in", store.Event{})
				time.Sleep(time.Second) // well inside the cooldown of 5 s
				if n := len(app.times()); n != tt.failures {
					t.Fatalf("%d attempts before Probe, want %d", n, tt.failures)
				}

				app.setStatus(http.StatusOK)
				s.Probe("in")
				s.Probe("no such inbox")
				synctest.Wait()
				asked := app.times()
				if len(asked) != tt.attempts {
					t.Fatalf("%d attempts right after Probe, want %d", len(asked), tt.attempts)
				}
				if last := asked[len(asked)-1]; tt.attempts > tt.failures && !last.Equal(time.Now()) {
					t.Errorf("probe %s after Probe, want at once", time.Since(last))
				}
				if st := s.Breakers()["in"]; st.State != breakerClosed {
					t.Errorf("breaker %+v, want closed", st)
				}
				if ev := q.get(id); (ev.State == store.Delivered) != (tt.attempts > tt.failures) {
					t.Errorf("event %s after %d attempts", ev.State, len(ev.attempts))
				}
			})
		})
	}
}
