package caddymodule

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape reads Caddy's metrics from the admin endpoint.
func scrape(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	return b.String()
}

// metric sums the samples of name whose labels include all of labels
// ("k=v" each). A missing metric is 0.
func metric(text, name string, labels ...string) float64 {
	sum := 0.0
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		matches := true
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			if !strings.Contains(series, k+`="`+v+`"`) {
				matches = false
			}
		}
		if !matches {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
			sum += f
		}
	}
	return sum
}

func TestMetricsMoveWithTheEvents(t *testing.T) {
	app := newSwitchable(t, http.StatusInternalServerError)
	startCaddy(t, inboxConfig(t.TempDir(), app.srv.URL, "retry 20ms 1h"))
	before := scrape(t)

	status, answer := send(t, `{"id":"evt-metrics"}`)
	if status != http.StatusOK {
		t.Fatalf("status = %d (%s)", status, answer)
	}
	id := eventID(t, answer)
	if status, _ := send(t, `{"id":"evt-metrics"}`); status != http.StatusOK {
		t.Fatalf("duplicate: status = %d", status)
	}
	req, _ := http.NewRequest(http.MethodPost, hookURL, strings.NewReader(`{}`))
	req.Header.Set("X-HOTMART-HOTTOK", "wrong")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong hottok: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	waitFor(t, "two failed attempts", 5*time.Second, func() bool { return app.calls.Load() == 2 })
	time.Sleep(20 * time.Millisecond) // the attempt is recorded after the app answered
	pending := scrape(t)

	app.status.Store(http.StatusOK)
	adminOK(t, http.MethodPost, "/hookinbox/events/"+id+"/replay", nil)
	waitFor(t, "delivery", 5*time.Second, func() bool {
		return metric(scrape(t), "caddy_hookinbox_events", "inbox=test", "state=delivered") == 1
	})
	after := scrape(t)

	moved := func(text, name string, labels ...string) float64 {
		return metric(text, name, labels...) - metric(before, name, labels...)
	}
	cases := []struct {
		name   string
		text   string
		metric string
		labels []string
		want   float64
	}{
		{"every request is counted", after, "caddy_hookinbox_requests_received_total", []string{"inbox=test"}, 3},
		{"the new event is accepted", after, "caddy_hookinbox_requests_accepted_total", []string{"inbox=test"}, 1},
		{"the copy is a duplicate", after, "caddy_hookinbox_requests_duplicate_total", []string{"inbox=test"}, 1},
		{"the wrong hottok is rejected with its reason", after, "caddy_hookinbox_requests_rejected_total", []string{"inbox=test", "reason=token_mismatch"}, 1},
		{"failed attempts by outcome", after, "caddy_hookinbox_delivery_attempts_total", []string{"inbox=test", "outcome=server_error"}, 2},
		{"the delivering attempt", after, "caddy_hookinbox_delivery_attempts_total", []string{"inbox=test", "outcome=ok"}, 1},
		{"attempt durations observed", after, "caddy_hookinbox_delivery_attempt_duration_seconds_count", []string{"inbox=test"}, 3},
		{"the delivery", after, "caddy_hookinbox_events_delivered_total", []string{"inbox=test"}, 1},
		{"its latency observed", after, "caddy_hookinbox_delivery_latency_seconds_count", []string{"inbox=test"}, 1},
		{"nothing dead", after, "caddy_hookinbox_events_dead_total", []string{"inbox=test"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := moved(tc.text, tc.metric, tc.labels...); got != tc.want {
				t.Errorf("%s%v moved by %v, want %v", tc.metric, tc.labels, got, tc.want)
			}
		})
	}

	gauges := []struct {
		name   string
		text   string
		metric string
		labels []string
		want   float64
	}{
		{"one event pending while the app fails", pending, "caddy_hookinbox_events", []string{"inbox=test", "state=pending"}, 1},
		{"none delivered yet", pending, "caddy_hookinbox_events", []string{"inbox=test", "state=delivered"}, 0},
		{"none pending once delivered", after, "caddy_hookinbox_events", []string{"inbox=test", "state=pending"}, 0},
		{"delivered once delivered", after, "caddy_hookinbox_events", []string{"inbox=test", "state=delivered"}, 1},
		{"no oldest pending once delivered", after, "caddy_hookinbox_oldest_pending_age_seconds", []string{"inbox=test"}, 0},
		{"breaker closed", after, "caddy_hookinbox_breaker_state", []string{"inbox=test", "state=closed"}, 1},
		{"breaker not open", after, "caddy_hookinbox_breaker_state", []string{"inbox=test", "state=open"}, 0},
	}
	for _, tc := range gauges {
		t.Run(tc.name, func(t *testing.T) {
			if got := metric(tc.text, tc.metric, tc.labels...); got != tc.want {
				t.Errorf("%s%v = %v, want %v", tc.metric, tc.labels, got, tc.want)
			}
		})
	}
	if age := metric(pending, "caddy_hookinbox_oldest_pending_age_seconds", "inbox=test"); age <= 0 || age > 60 {
		t.Errorf("oldest pending age = %v s while an event waits, want a few milliseconds", age)
	}
}
