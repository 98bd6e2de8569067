package deliver

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookinbox/hookinbox/internal/store"
)

func TestDeliverFirstTry(t *testing.T) {
	body := []byte("{\"id\":\"evt_1\"}\x00\xff\r\n binary \xc3\x28 tail")
	received := time.Date(2026, 11, 3, 14, 5, 6, 789, time.FixedZone("BRT", -3*3600))
	tests := []struct {
		name       string
		forward    string // path and query after the backend's URL
		method     string
		rawQuery   string
		verified   string
		wantURI    string
		wantMethod string
		wantVerif  string
	}{
		{"query merged after forward's own", "/hook?a=1", "", "b=2&c=%20x", "stripe", "/hook?a=1&b=2&c=%20x", "POST", "stripe"},
		{"query appended", "/hook", "", "b=2", "hotmart", "/hook?b=2", "POST", "hotmart"},
		{"no query", "/hook?a=1", "", "", "", "/hook?a=1", "POST", "none"},
		{"forward method", "/hook", "PUT", "", "github", "/hook", "PUT", "github"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, func(w http.ResponseWriter, r *http.Request, n int) {
				w.Write([]byte("thanks"))
			})
			q := newFakeQueue(t)
			var rec recorder
			s := newService(t, q, rec.hooks())
			s.Configure([]Inbox{{Name: "in", Forward: b.URL + tt.forward, Method: tt.method, Timeout: time.Second}})

			h := http.Header{
				"Content-Type":          {"application/json"},
				"Stripe-Signature":      {"t=1,v1=abc"},
				"X-Multi":               {"one", "two"},
				"Connection":            {"keep-alive, X-Conn-Named"},
				"X-Conn-Named":          {"drop me"},
				"Keep-Alive":            {"timeout=5"},
				"Proxy-Authorization":   {"Basic Zm9v"},
				"Proxy-Connection":      {"keep-alive"},
				"Te":                    {"trailers"},
				"Trailer":               {"X-T"},
				"Upgrade":               {"h2c"},
				"Transfer-Encoding":     {"chunked"},
				"Host":                  {"sender.example"},
				"Content-Length":        {"999"},
				"Hookinbox-Verified":    {"spoofed"},
				"Hookinbox-Attempt":     {"77"},
				"Hookinbox-Extra":       {"spoofed"},
				"X-Hotmart-Hottok":      {"secret-token"},
				"User-Agent":            {"Stripe/1.0"},
				"X-Forwarded-For":       {"203.0.113.9"},
				"Webhook-Id":            {"msg_1"},
				"Webhook-Timestamp":     {"1700000000"},
				"Webhook-Signature":     {"v1,abc"},
				"Accept-Encoding":       {"br"},
				"Expect":                {"100-continue"},
				"X-Empty-Value-Allowed": {""},
			}
			id := q.add("in", store.Event{Body: body, Header: h, RawQuery: tt.rawQuery, Verified: tt.verified, ReceivedAt: received})

			waitFor(t, 2*time.Second, "delivery", func() bool { return q.finished("in") == 1 })
			got := b.got()
			if len(got) != 1 {
				t.Fatalf("backend got %d requests, want 1", len(got))
			}
			r := got[0]
			if r.method != tt.wantMethod {
				t.Errorf("method = %s, want %s", r.method, tt.wantMethod)
			}
			if r.uri != tt.wantURI {
				t.Errorf("URI = %s, want %s", r.uri, tt.wantURI)
			}
			if !bytes.Equal(r.body, body) {
				t.Errorf("body = %q, want %q", r.body, body)
			}
			if want := strings.TrimPrefix(b.URL, "http://"); r.host != want {
				t.Errorf("Host = %s, want the forward URL's %s", r.host, want)
			}
			want := map[string][]string{
				"Content-Type":          {"application/json"},
				"Stripe-Signature":      {"t=1,v1=abc"},
				"X-Multi":               {"one", "two"},
				"X-Hotmart-Hottok":      {"secret-token"},
				"User-Agent":            {"Stripe/1.0"},
				"X-Forwarded-For":       {"203.0.113.9"},
				"Webhook-Id":            {"msg_1"},
				"Webhook-Timestamp":     {"1700000000"},
				"Webhook-Signature":     {"v1,abc"},
				"X-Empty-Value-Allowed": {""},
				"Hookinbox-Id":          {id},
				"Hookinbox-Attempt":     {"1"},
				"Hookinbox-Received-At": {"2026-11-03T17:05:06Z"},
				"Hookinbox-Verified":    {tt.wantVerif},
				"Content-Length":        {strconv.Itoa(len(body))},
				"Accept-Encoding":       {"gzip"}, // the client's own
			}
			for k, v := range want {
				if !slices.Equal(r.header[k], v) {
					t.Errorf("header %s = %q, want %q", k, r.header[k], v)
				}
			}
			for k := range r.header {
				if _, ok := want[k]; !ok {
					t.Errorf("unexpected header %s: %q", k, r.header[k])
				}
			}

			ev := q.get(id)
			if len(ev.attempts) != 1 {
				t.Fatalf("recorded %d attempts, want 1", len(ev.attempts))
			}
			a := ev.attempts[0]
			if a.N != 1 || a.Outcome != store.OutcomeOK || a.Status != 200 || string(a.Response) != "thanks" || a.Error != "" {
				t.Errorf("attempt = %+v", a)
			}
			if a.Duration <= 0 || a.At.IsZero() {
				t.Errorf("attempt time = %v, duration %v", a.At, a.Duration)
			}
			if !ev.nexts[0].Delivered {
				t.Errorf("next = %+v, want delivered", ev.nexts[0])
			}
			hs := rec.snapshot()
			if len(hs.attempts) != 1 || !slices.Equal(hs.delivered, []string{id}) || len(hs.dead) != 0 {
				t.Errorf("hooks: attempts %d, delivered %v, dead %v", len(hs.attempts), hs.delivered, hs.dead)
			}
		})
	}
}

func TestEmptyBodyIsNotChunked(t *testing.T) {
	b := newBackend(t, nil)
	q := newFakeQueue(t)
	s := newService(t, q, Hooks{})
	s.Configure([]Inbox{{Name: "in", Forward: b.URL}})
	q.add("in", store.Event{})
	waitFor(t, 2*time.Second, "delivery", func() bool { return q.finished("in") == 1 })
	r := b.got()[0]
	if len(r.body) != 0 || r.header.Get("Content-Length") != "0" || r.header.Get("Transfer-Encoding") != "" {
		t.Errorf("empty body sent as %q with Content-Length %q", r.body, r.header.Get("Content-Length"))
	}
}

func TestRetryThenDelivered(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	q := newFakeQueue(t)
	var rec recorder
	s := newService(t, q, rec.hooks())
	s.Configure([]Inbox{{Name: "in", Forward: b.URL, Retry: []time.Duration{20 * time.Millisecond, time.Hour}}})
	id := q.add("in", store.Event{Body: []byte("x")})

	waitFor(t, 2*time.Second, "delivery", func() bool { return q.finished("in") == 1 })
	got := b.got()
	if len(got) != 2 {
		t.Fatalf("backend got %d requests, want 2", len(got))
	}
	for i, r := range got {
		if r.header.Get("Hookinbox-Id") != id || r.header.Get("Hookinbox-Attempt") != []string{"1", "2"}[i] {
			t.Errorf("request %d: Hookinbox-Id %s, Hookinbox-Attempt %s", i+1, r.header.Get("Hookinbox-Id"), r.header.Get("Hookinbox-Attempt"))
		}
	}
	if gap := got[1].at.Sub(got[0].at); gap < 20*time.Millisecond {
		t.Errorf("retried after %s, want the scheduled 20ms", gap)
	}
	ev := q.get(id)
	if ev.State != store.Delivered || len(ev.attempts) != 2 {
		t.Fatalf("state %s after %d attempts", ev.State, len(ev.attempts))
	}
	a1, a2 := ev.attempts[0], ev.attempts[1]
	if a1.Outcome != store.OutcomeServerError || a1.Status != 500 || string(a1.Response) != "boom\n" {
		t.Errorf("attempt 1 = %+v", a1)
	}
	if a2.N != 2 || a2.Outcome != store.OutcomeOK || a2.Status != 204 {
		t.Errorf("attempt 2 = %+v", a2)
	}
	if wait := ev.nexts[0].RetryAt.Sub(a1.At.Add(a1.Duration)); wait < 20*time.Millisecond || wait > 100*time.Millisecond {
		t.Errorf("retry scheduled %s after attempt 1, want Retry[0] = 20ms", wait)
	}
}

func TestBackendDownThenUp(t *testing.T) {
	// Take a free port, and leave it closed: nothing listens yet.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	q := newFakeQueue(t)
	s := newService(t, q, Hooks{})
	s.Configure([]Inbox{{Name: "in", Forward: "http://" + addr + "/hook", Retry: retries(50, 20*time.Millisecond)}})
	id := q.add("in", store.Event{Body: []byte("x")})

	waitFor(t, 2*time.Second, "a failed attempt", func() bool { return len(q.get(id).attempts) >= 1 })
	if a := q.get(id).attempts[0]; a.Outcome != store.OutcomeConnect || a.Error == "" {
		t.Fatalf("attempt on a closed port = %+v, want connect", a)
	}

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken again: %v", addr, err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}}
	srv.Start()
	defer srv.Close()

	waitFor(t, 2*time.Second, "delivery once up", func() bool { return q.finished("in") == 1 })
	ev := q.get(id)
	if last := ev.attempts[len(ev.attempts)-1]; ev.State != store.Delivered || last.Outcome != store.OutcomeOK {
		t.Errorf("state %s, last attempt %+v", ev.State, last)
	}
}

// TestOutcomeClasses makes one attempt per case, with no retry, and checks
// its class and that the event is dead.
func TestOutcomeClasses(t *testing.T) {
	// A redirect's target must never be asked.
	target := newBackend(t, nil)

	closedPort := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	plain := func(t *testing.T, h http.HandlerFunc) string {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL
	}

	tests := []struct {
		name     string
		forward  func(t *testing.T) string
		success  []int
		timeout  time.Duration
		outcome  string
		status   int
		response string
		dead     bool
	}{
		{
			name: "302 is a redirect and is not followed",
			forward: func(t *testing.T) string {
				return plain(t, func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, target.URL+"/elsewhere", http.StatusFound)
				})
			},
			outcome: store.OutcomeRedirect, status: 302, dead: true,
		},
		{
			name: "400 is a client error",
			forward: func(t *testing.T) string {
				return plain(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "bad payload", 400) })
			},
			outcome: store.OutcomeClientError, status: 400, response: "bad payload\n", dead: true,
		},
		{
			name: "503 is a server error",
			forward: func(t *testing.T) string {
				return plain(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
			},
			outcome: store.OutcomeServerError, status: 503, dead: true,
		},
		{
			name: "hanging backend is a timeout",
			forward: func(t *testing.T) string {
				return plain(t, func(w http.ResponseWriter, r *http.Request) {
					// Read the body so that the server notices the client
					// hanging up and cancels r's context.
					io.Copy(io.Discard, r.Body)
					select {
					case <-r.Context().Done():
					case <-time.After(5 * time.Second):
					}
				})
			},
			timeout: 100 * time.Millisecond,
			outcome: store.OutcomeTimeout, dead: true,
		},
		{
			name: "connection closed without an answer is a reset",
			forward: func(t *testing.T) string {
				return plain(t, func(w http.ResponseWriter, r *http.Request) {
					conn, _, err := w.(http.Hijacker).Hijack()
					if err == nil {
						conn.Close()
					}
				})
			},
			outcome: store.OutcomeReset, dead: true,
		},
		{
			name:    "closed port is connect",
			forward: func(t *testing.T) string { return "http://" + closedPort(t) },
			outcome: store.OutcomeConnect, dead: true,
		},
		{
			name:    "unknown host is connect",
			forward: func(t *testing.T) string { return "http://hookinbox-test.invalid" },
			outcome: store.OutcomeConnect, dead: true,
		},
		{
			name: "https to a plain HTTP server is tls",
			forward: func(t *testing.T) string {
				return strings.Replace(plain(t, func(w http.ResponseWriter, r *http.Request) {}), "http:", "https:", 1)
			},
			outcome: store.OutcomeTLS, dead: true,
		},
		{
			name: "untrusted certificate is tls",
			forward: func(t *testing.T) string {
				srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
				srv.Config.ErrorLog = quietLog()
				t.Cleanup(srv.Close)
				return srv.URL
			},
			outcome: store.OutcomeTLS, dead: true,
		},
		{
			name: "custom success: 202 listed is ok",
			forward: func(t *testing.T) string {
				return plain(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(202) })
			},
			success: []int{202}, outcome: store.OutcomeOK, status: 202,
		},
		{
			name: "custom success: 200 not listed is a failure",
			forward: func(t *testing.T) string {
				return plain(t, func(w http.ResponseWriter, r *http.Request) {})
			},
			success: []int{202, 204}, outcome: store.OutcomeClientError, status: 200, dead: true,
		},
		{
			name: "custom success: 409 listed is ok",
			forward: func(t *testing.T) string {
				return plain(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(409) })
			},
			success: []int{200, 409}, outcome: store.OutcomeOK, status: 409,
		},
		{
			name: "only the first KiB of the answer is kept",
			forward: func(t *testing.T) string {
				return plain(t, func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(500)
					w.Write(bytes.Repeat([]byte("a"), 5000))
				})
			},
			outcome: store.OutcomeServerError, status: 500, response: strings.Repeat("a", 1024), dead: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newFakeQueue(t)
			var rec recorder
			s := newService(t, q, rec.hooks())
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 2 * time.Second
			}
			s.Configure([]Inbox{{Name: "in", Forward: tt.forward(t), Success: tt.success, Timeout: timeout}})
			id := q.add("in", store.Event{Body: []byte(`{}`)})
			waitFor(t, 3*time.Second, "one attempt", func() bool { return q.finished("in") == 1 })

			ev := q.get(id)
			a := ev.attempts[0]
			if a.Outcome != tt.outcome || a.Status != tt.status {
				t.Errorf("outcome %s status %d (error %q), want %s %d", a.Outcome, a.Status, a.Error, tt.outcome, tt.status)
			}
			if tt.response != "" && string(a.Response) != tt.response {
				t.Errorf("response = %q (%d bytes), want %d bytes", a.Response, len(a.Response), len(tt.response))
			}
			if tt.status == 0 && a.Error == "" {
				t.Errorf("no error told for a failure without an answer")
			}
			if tt.outcome == store.OutcomeTimeout && (a.Duration < timeout || a.Duration > timeout+time.Second) {
				t.Errorf("timeout after %s, want %s", a.Duration, timeout)
			}
			if got := ev.State == store.Dead; got != tt.dead {
				t.Errorf("state = %s, dead want %v", ev.State, tt.dead)
			}
			// The hooks run after the record: wait for them.
			waitFor(t, time.Second, "the hooks", func() bool {
				hs := rec.snapshot()
				return len(hs.dead)+len(hs.delivered) > 0
			})
			hs := rec.snapshot()
			if tt.dead && len(hs.dead) != 1 || !tt.dead && len(hs.delivered) != 1 {
				t.Errorf("hooks: delivered %v, dead %v", hs.delivered, hs.dead)
			}
		})
	}
	if n := target.hits(); n != 0 {
		t.Errorf("redirect target got %d requests, want none", n)
	}
}

// TestErrorHasNoCredentials checks that a forward URL's userinfo and query
// never reach the attempt's record.
func TestErrorHasNoCredentials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for _, forward := range []string{
		"http://hookuser:s3cretpass@" + addr + "/hook?token=qs3cret",
		"http://hookuser:s3cretpass@hookinbox-test.invalid/hook?token=qs3cret",
	} {
		q := newFakeQueue(t)
		s := newService(t, q, Hooks{})
		s.Configure([]Inbox{{Name: "in", Forward: forward}})
		id := q.add("in", store.Event{})
		waitFor(t, 3*time.Second, "one attempt", func() bool { return q.finished("in") == 1 })
		msg := q.get(id).attempts[0].Error
		if msg == "" || strings.Contains(msg, "s3cretpass") || strings.Contains(msg, "qs3cret") || strings.Contains(msg, "hookuser") {
			t.Errorf("error %q is empty or tells a secret", msg)
		}
	}
}

func TestRetriesExhaustedDead(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request, n int) { w.WriteHeader(500) })
	q := newFakeQueue(t)
	var rec recorder
	s := newService(t, q, rec.hooks())
	s.Configure([]Inbox{{Name: "in", Forward: b.URL, Retry: []time.Duration{10 * time.Millisecond, 10 * time.Millisecond}}})
	id := q.add("in", store.Event{})

	waitFor(t, 2*time.Second, "dead", func() bool { return q.finished("in") == 1 })
	time.Sleep(30 * time.Millisecond) // nothing more may come
	ev := q.get(id)
	if ev.State != store.Dead || len(ev.attempts) != 3 || b.hits() != 3 {
		t.Fatalf("state %s after %d attempts recorded, %d sent; want dead after 3", ev.State, len(ev.attempts), b.hits())
	}
	for i, a := range ev.attempts {
		if a.N != i+1 || a.Outcome != store.OutcomeServerError {
			t.Errorf("attempt %d = %+v", i+1, a)
		}
	}
	if ev.nexts[0].RetryAt.IsZero() || ev.nexts[1].RetryAt.IsZero() || !ev.nexts[2].Dead {
		t.Errorf("nexts = %+v, want retry, retry, dead", ev.nexts)
	}
	if hs := rec.snapshot(); len(hs.attempts) != 3 || !slices.Equal(hs.dead, []string{id}) || len(hs.delivered) != 0 {
		t.Errorf("hooks: %d attempts, dead %v, delivered %v", len(hs.attempts), hs.dead, hs.delivered)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter string
		want       time.Duration
	}{
		{"503 seconds longer than schedule", 503, "3", 3 * time.Second},
		{"429 seconds longer than schedule", 429, "120", 2 * time.Minute},
		{"429 HTTP date", 429, time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), time.Hour},
		{"shorter than schedule is ignored", 503, "0", 50 * time.Millisecond},
		{"clamped to 24h", 503, "99999999", 24 * time.Hour},
		{"not on a 500", 500, "3", 50 * time.Millisecond},
		{"unreadable ignored", 429, "soon", 50 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, func(w http.ResponseWriter, r *http.Request, n int) {
				w.Header().Set("Retry-After", tt.retryAfter)
				w.WriteHeader(tt.status)
			})
			q := newFakeQueue(t)
			s := newService(t, q, Hooks{})
			s.Configure([]Inbox{{Name: "in", Forward: b.URL, Retry: []time.Duration{50 * time.Millisecond}}})
			id := q.add("in", store.Event{})
			waitFor(t, 2*time.Second, "one attempt", func() bool { return len(q.get(id).attempts) == 1 })
			ev := q.get(id)
			a := ev.attempts[0]
			wait := ev.nexts[0].RetryAt.Sub(a.At.Add(a.Duration))
			if wait < tt.want-2*time.Second || wait > tt.want+50*time.Millisecond {
				t.Errorf("retry in %s, want %s", wait, tt.want)
			}
		})
	}
}

func TestOrderedHoldsTheLine(t *testing.T) {
	// The head fails twice; nothing behind it may go before it is through.
	var headFailures atomic.Int32
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if r.Header.Get("X-Seq") == "0" && headFailures.Add(1) <= 2 {
			w.WriteHeader(500)
			return
		}
		time.Sleep(2 * time.Millisecond)
	})
	q := newFakeQueue(t)
	s := newService(t, q, Hooks{})
	// Concurrency is ignored when ordered.
	s.Configure([]Inbox{{Name: "in", Forward: b.URL, Ordered: true, Concurrency: 8, Retry: retries(5, 20*time.Millisecond)}})
	const n = 8
	for i := range n {
		q.add("in", store.Event{Header: http.Header{"X-Seq": {string(rune('0' + i))}}})
	}

	waitFor(t, 3*time.Second, "all delivered", func() bool { return q.finished("in") == n })
	var seq []string
	for _, r := range b.got() {
		seq = append(seq, r.header.Get("X-Seq"))
	}
	want := []string{"0", "0", "0", "1", "2", "3", "4", "5", "6", "7"}
	if !slices.Equal(seq, want) {
		t.Errorf("backend saw %v, want %v", seq, want)
	}
	if m := b.maxInFlight.Load(); m != 1 {
		t.Errorf("max in flight = %d, want 1", m)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	for _, c := range []int{1, 3, 6} {
		t.Run("concurrency "+string(rune('0'+c)), func(t *testing.T) {
			b := newBackend(t, func(w http.ResponseWriter, r *http.Request, n int) { time.Sleep(15 * time.Millisecond) })
			q := newFakeQueue(t)
			s := newService(t, q, Hooks{})
			s.Configure([]Inbox{{Name: "in", Forward: b.URL, Concurrency: c}})
			const n = 24
			for range n {
				q.add("in", store.Event{})
			}
			waitFor(t, 5*time.Second, "all delivered", func() bool { return q.finished("in") == n })
			if m := b.maxInFlight.Load(); m != int64(c) {
				t.Errorf("max in flight = %d, want %d", m, c)
			}
		})
	}
}

func TestConfigureIsIdempotentAndSwapsSettings(t *testing.T) {
	release := make(chan struct{})
	slow := newBackend(t, func(w http.ResponseWriter, r *http.Request, n int) { <-release })
	next := newBackend(t, nil)
	q := newFakeQueue(t)
	s := newService(t, q, Hooks{})
	cfg := []Inbox{{Name: "in", Forward: slow.URL + "/a", Concurrency: 2}}
	for range 5 {
		s.Configure(cfg)
	}
	for range 6 {
		q.add("in", store.Event{})
	}
	waitFor(t, 2*time.Second, "two in flight", func() bool { return slow.inFlight.Load() == 2 })
	time.Sleep(20 * time.Millisecond)
	if m := slow.maxInFlight.Load(); m != 2 {
		t.Errorf("max in flight = %d after Configure five times, want 2", m)
	}
	if n := len(s.Breakers()); n != 1 {
		t.Errorf("%d inboxes, want 1", n)
	}

	// The next attempts go to the new URL, with the new concurrency.
	s.Configure([]Inbox{{Name: "in", Forward: next.URL + "/b", Concurrency: 1}})
	close(release)
	waitFor(t, 2*time.Second, "all delivered", func() bool { return q.finished("in") == 6 })
	if got := slow.hits(); got != 2 {
		t.Errorf("old URL got %d requests, want the 2 in flight", got)
	}
	if got := next.got(); len(got) != 4 || got[0].uri != "/b" {
		t.Errorf("new URL got %d requests, want 4 at /b", len(got))
	}
	if m := next.maxInFlight.Load(); m != 1 {
		t.Errorf("new concurrency: max in flight = %d, want 1", m)
	}

	// An inbox no longer configured stops being claimed; its events stay.
	s.Configure(nil)
	id := q.add("in", store.Event{})
	time.Sleep(30 * time.Millisecond)
	if ev := q.get(id); ev.State != store.Pending || ev.leased {
		t.Errorf("event of a removed inbox: state %s, leased %v", ev.State, ev.leased)
	}
	if n := len(s.Breakers()); n != 0 {
		t.Errorf("%d inboxes after removing all, want 0", n)
	}
}

// TestConfigureRemoveAndAddBack: an inbox removed while attempts are in
// flight and configured again keeps counting them toward its concurrency.
func TestConfigureRemoveAndAddBack(t *testing.T) {
	release := make(chan struct{})
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request, n int) { <-release })
	q := newFakeQueue(t)
	s := newService(t, q, Hooks{})
	cfg := []Inbox{{Name: "in", Forward: b.URL, Concurrency: 2}}
	s.Configure(cfg)
	for range 6 {
		q.add("in", store.Event{})
	}
	waitFor(t, 2*time.Second, "two in flight", func() bool { return b.inFlight.Load() == 2 })
	s.Configure(nil)
	s.Configure(cfg)
	time.Sleep(30 * time.Millisecond)
	if n := b.inFlight.Load(); n != 2 {
		t.Errorf("%d in flight after remove and add back, want 2", n)
	}
	close(release)
	waitFor(t, 2*time.Second, "all delivered", func() bool { return q.finished("in") == 6 })
	if m := b.maxInFlight.Load(); m != 2 {
		t.Errorf("max in flight = %d, want 2", m)
	}
}

func TestBreaker(t *testing.T) {
	var up atomic.Bool
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request, n int) {
		time.Sleep(10 * time.Millisecond)
		if !up.Load() {
			w.WriteHeader(502)
		}
	})
	q := newFakeQueue(t)
	var rec recorder
	opened := make(chan time.Time, 4)
	rec.onBreaker = func(open bool) {
		if open {
			opened <- time.Now()
		}
	}
	s := New(q, nil, rec.hooks())
	s.breakerThreshold = 3
	s.breakerCooldown = 200 * time.Millisecond
	s.breakerMaxCooldown = time.Second
	t.Cleanup(func() { s.Stop(context.Background()) })
	s.Configure([]Inbox{{Name: "in", Forward: b.URL, Concurrency: 4, Retry: retries(20, 10*time.Millisecond)}})
	const n = 16
	for range n {
		q.add("in", store.Event{})
	}

	var openAt time.Time
	select {
	case openAt = <-opened:
	case <-time.After(2 * time.Second):
		t.Fatal("breaker never opened")
	}
	if st := s.Breakers()["in"]; st.State != breakerOpen || st.Failures < 3 {
		t.Errorf("breaker = %+v, want open after 3 failures", st)
	}

	// Attempts in flight when it opened end within 10ms; then nothing may be
	// sent until the cooldown is over.
	time.Sleep(time.Until(openAt.Add(40 * time.Millisecond)))
	hitsOpen := b.hits()
	b.maxInFlight.Store(b.inFlight.Load())
	time.Sleep(time.Until(openAt.Add(180 * time.Millisecond)))
	if h := b.hits(); h != hitsOpen {
		t.Errorf("%d requests while open, want none", h-hitsOpen)
	}

	// Half open at 200ms: one probe, which fails and reopens for 400ms.
	time.Sleep(time.Until(openAt.Add(350 * time.Millisecond)))
	if h := b.hits(); h != hitsOpen+1 {
		t.Errorf("%d probes in the first half-open, want 1", h-hitsOpen)
	}
	if st := s.Breakers()["in"]; st.State != breakerOpen {
		t.Errorf("after a failed probe: %+v, want open", st)
	}
	if m := b.maxInFlight.Load(); m != 1 {
		t.Errorf("max in flight while open and half open = %d, want 1", m)
	}

	// The backend comes back: the next probe (at ~600ms) closes the breaker
	// and the backlog drains at the inbox's concurrency.
	up.Store(true)
	b.maxInFlight.Store(0)
	waitFor(t, 3*time.Second, "all delivered", func() bool { return q.finished("in") == n })
	if st := s.Breakers()["in"]; st.State != breakerClosed || st.Failures != 0 {
		t.Errorf("breaker after recovery = %+v, want closed", st)
	}
	if m := b.maxInFlight.Load(); m != 4 {
		t.Errorf("max in flight after closing = %d, want the concurrency 4", m)
	}
	if hs := rec.snapshot(); !slices.Equal(hs.breaker, []bool{true, false}) {
		t.Errorf("breaker hooks = %v, want open then closed", hs.breaker)
	}
	// Nothing was spent beyond one attempt per probe while it was down: the
	// events' retries were kept for when the backend is up.
	var maxAttempts int
	for _, id := range q.ids("in") {
		maxAttempts = max(maxAttempts, len(q.get(id).attempts))
	}
	if maxAttempts > 5 {
		t.Errorf("an event made %d attempts; the breaker should have saved its retries", maxAttempts)
	}
}

func TestStopReleasesInFlight(t *testing.T) {
	cancelled := make(chan struct{}, 2)
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request, n int) {
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-time.After(5 * time.Second):
		}
	})
	q := newFakeQueue(t)
	var rec recorder
	s := New(q, nil, rec.hooks())
	s.Configure([]Inbox{{Name: "in", Forward: b.URL, Concurrency: 2}})
	a, c := q.add("in", store.Event{}), q.add("in", store.Event{})
	waitFor(t, 2*time.Second, "two in flight", func() bool { return b.inFlight.Load() == 2 })

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	s.Stop(ctx)
	// Well under the backend's 5 s: Stop did not wait for the attempts,
	// with room for a slow machine.
	if d := time.Since(start); d < 50*time.Millisecond || d > 4*time.Second {
		t.Errorf("Stop took %s, want its 50ms grace", d)
	}
	for _, id := range []string{a, c} {
		if ev := q.get(id); ev.leased || ev.State != store.Pending || len(ev.attempts) != 0 {
			t.Errorf("event %s after Stop: leased %v, state %s, %d attempts; want released, not recorded", id, ev.leased, ev.State, len(ev.attempts))
		}
	}
	if len(rec.snapshot().attempts) != 0 {
		t.Errorf("hooks told of a cancelled attempt")
	}
	for range 2 {
		select {
		case <-cancelled:
		case <-time.After(time.Second):
			t.Fatal("the backend's request was not cancelled")
		}
	}
	// Stopped: nothing is claimed any more.
	q.add("in", store.Event{})
	time.Sleep(20 * time.Millisecond)
	if n := q.leased("in"); n != 0 {
		t.Errorf("%d leased after Stop", n)
	}
}

func TestStopWaitsForInFlight(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request, n int) { time.Sleep(50 * time.Millisecond) })
	q := newFakeQueue(t)
	s := New(q, nil, Hooks{})
	s.Configure([]Inbox{{Name: "in", Forward: b.URL}})
	id := q.add("in", store.Event{})
	waitFor(t, 2*time.Second, "in flight", func() bool { return b.inFlight.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.Stop(ctx)
	if ev := q.get(id); ev.State != store.Delivered {
		t.Errorf("state %s after a graceful Stop, want the attempt in flight finished and delivered", ev.State)
	}
}

// TestIdleLatency checks that an event due now is sent at once: the
// dispatcher is woken, it does not poll.
func TestIdleLatency(t *testing.T) {
	b := newBackend(t, nil)
	q := newFakeQueue(t)
	s := newService(t, q, Hooks{})
	s.Configure([]Inbox{{Name: "in", Forward: b.URL}})
	// Warm the connection up.
	q.add("in", store.Event{})
	waitFor(t, 2*time.Second, "warm-up", func() bool { return q.finished("in") == 1 })

	var lat []time.Duration
	for i := range 30 {
		time.Sleep(2 * time.Millisecond) // idle: the dispatcher sleeps
		start := time.Now()
		q.add("in", store.Event{})
		waitFor(t, 2*time.Second, "delivery", func() bool { return b.hits() == i+2 })
		got := b.got()
		lat = append(lat, got[len(got)-1].at.Sub(start))
	}
	slices.Sort(lat)
	if med := lat[len(lat)/2]; med > 2*time.Millisecond {
		t.Errorf("median accept-to-delivery latency %s, want well under 2ms (all: %v)", med, lat)
	}
	t.Logf("accept-to-delivery latency: median %s, max %s", lat[len(lat)/2], lat[len(lat)-1])
}

// TestResendOnStaleKeepAlive: the application closes a keep-alive
// connection right as a request goes out on it. That one failure is no
// attempt of the application's: the request is sent again at once on a new
// connection and the event is delivered on its first attempt.
func TestResendOnStaleKeepAlive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns, requests atomic.Int32
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			first := conns.Add(1) == 1
			go func() {
				defer conn.Close()
				buf := make([]byte, 64<<10)
				for i := 0; ; i++ {
					if _, err := conn.Read(buf); err != nil {
						return
					}
					requests.Add(1)
					if first && i == 1 {
						return // the second request on the first connection: closed unanswered
					}
					conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
				}
			}()
		}
	}()

	q := newFakeQueue(t)
	s := newService(t, q, Hooks{})
	s.Configure([]Inbox{{Name: "in", Forward: "http://" + ln.Addr().String(), Concurrency: 1}})
	for range 2 {
		q.add("in", store.Event{Body: []byte("x")})
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, 2*time.Second, "delivery", func() bool { return q.finished("in") == 2 })
	for _, id := range q.ids("in") {
		ev := q.get(id)
		if len(ev.attempts) != 1 || ev.attempts[0].Outcome != store.OutcomeOK {
			t.Errorf("event %s: %+v, want delivered on attempt 1", id, ev.attempts)
		}
	}
	if c, r := conns.Load(), requests.Load(); c != 2 || r != 3 {
		t.Errorf("%d connections, %d requests; want 2 and 3 (one resend)", c, r)
	}
}

// A replayed event gets the whole retry schedule again: after its replay,
// a still-failing app sees it retried, not dead after one attempt.
func TestReplayedEventGetsAFreshSchedule(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request, n int) { w.WriteHeader(500) })
	q := newFakeQueue(t)
	s := newService(t, q, Hooks{})
	s.Configure([]Inbox{{Name: "in", Forward: b.URL, Retry: []time.Duration{10 * time.Millisecond}}})
	// Two attempts made before a replay: past the one-wait schedule.
	id := q.add("in", store.Event{Attempts: 2, ReplayedAfter: 2})

	waitFor(t, 2*time.Second, "dead", func() bool { return q.finished("in") == 1 })
	ev := q.get(id)
	if len(ev.nexts) != 2 || ev.nexts[0].RetryAt.IsZero() || !ev.nexts[1].Dead {
		t.Fatalf("nexts = %+v, want a retry and then dead", ev.nexts)
	}
	if ev.attempts[0].N != 3 {
		t.Errorf("first attempt after the replay is numbered %d, want 3", ev.attempts[0].N)
	}
}
