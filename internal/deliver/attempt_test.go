package deliver

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookinbox/hookinbox/internal/store"
)

// rawApp answers every request on a raw TCP listener with answer, written
// as is, then closes the connection; with hang it keeps the connection open
// until the client goes away instead. It returns the forward URL.
func rawApp(t *testing.T, answer string, hang bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				// Read the whole request first: closing with unread input
				// would send a TCP reset, which may discard the answer.
				r := bufio.NewReader(conn)
				req, err := http.ReadRequest(r)
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				io.WriteString(conn, answer)
				if hang {
					io.Copy(io.Discard, r)
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/hook"
}

// TestCutOffAnswer: an answer is classed by its status only when it arrived
// whole. One cut off after its status line is a reset (a timeout when it
// stops coming), keeps its status in the record, is retried and counts
// toward the breaker; a body longer than what is kept stays ok.
func TestCutOffAnswer(t *testing.T) {
	long := strings.Repeat("a", responseKeep+responseDrain+10_000)
	tests := []struct {
		name     string
		answer   string
		hang     bool // then the attempt's timeout ends it
		outcome  string
		status   int
		response string
		error    string // a part of the attempt's error; "" for none
	}{
		{
			name:    "200 with Content-Length 1000 cut off after 7 bytes is a reset",
			answer:  "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial",
			outcome: store.OutcomeReset, status: 200, response: "partial",
			error: "the answer was cut off after 7 of 1000 bytes of its body",
		},
		{
			name:    "chunked 200 cut off after a chunk is a reset",
			answer:  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\n",
			outcome: store.OutcomeReset, status: 200, response: "partial",
			error: "the answer was cut off after 7 bytes of its body",
		},
		{
			name:    "200 cut off past the kept KiB is a reset",
			answer:  "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + long[:3000],
			outcome: store.OutcomeReset, status: 200, response: long[:responseKeep],
			error: "the answer was cut off after 3000 of 5000 bytes of its body",
		},
		{
			name:    "500 cut off is a reset with its status",
			answer:  "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 100\r\n\r\noops",
			outcome: store.OutcomeReset, status: 500, response: "oops",
			error: "the answer was cut off after 4 of 100 bytes of its body",
		},
		{
			name:    "200 whose body stops coming is a timeout",
			answer:  "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial",
			hang:    true,
			outcome: store.OutcomeTimeout, status: 200, response: "partial",
			error: "7 of 1000 bytes of its body",
		},
		{
			name:    "a body longer than what is drained, sent whole, is ok",
			answer:  "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(long)) + "\r\n\r\n" + long,
			outcome: store.OutcomeOK, status: 200, response: long[:responseKeep],
		},
		{
			name:    "a body ended by closing, with no length, is ok",
			answer:  "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nthanks",
			outcome: store.OutcomeOK, status: 200, response: "thanks",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Only a hanging answer waits for the timeout; the others get
			// room for a loaded machine.
			timeout := 10 * time.Second
			if tt.hang {
				timeout = 300 * time.Millisecond
			}
			q := newFakeQueue(t)
			s := newService(t, q, Hooks{})
			s.Configure([]Inbox{{
				Name: "in", Forward: rawApp(t, tt.answer, tt.hang),
				Timeout: timeout, Retry: []time.Duration{time.Hour},
			}})
			id := q.add("in", store.Event{Body: []byte(`{}`)})
			waitFor(t, 3*time.Second, "one attempt", func() bool { return len(q.get(id).attempts) == 1 })

			ev := q.get(id)
			a, next := ev.attempts[0], ev.nexts[0]
			t.Logf("recorded: %s %d %q", a.Outcome, a.Status, a.Error)
			if a.Outcome != tt.outcome || a.Status != tt.status {
				t.Errorf("outcome %s status %d (error %q), want %s %d", a.Outcome, a.Status, a.Error, tt.outcome, tt.status)
			}
			if string(a.Response) != tt.response {
				t.Errorf("response = %.40q (%d bytes), want %.40q (%d bytes)", a.Response, len(a.Response), tt.response, len(tt.response))
			}
			if tt.error == "" && a.Error != "" || !strings.Contains(a.Error, tt.error) {
				t.Errorf("error = %q, want one with %q", a.Error, tt.error)
			}
			delivered := tt.outcome == store.OutcomeOK
			if next.Delivered != delivered || !delivered && next.RetryAt.IsZero() {
				t.Errorf("next = %+v, want delivered %v or else a retry", next, delivered)
			}
			failures := 0
			if breakerFailure(tt.outcome) {
				failures = 1
			}
			if got := s.Breakers()["in"].Failures; got != failures {
				t.Errorf("breaker failures = %d, want %d", got, failures)
			}
		})
	}
}

// TestForwardHeaderNames: a stored header name that is not canonical (set
// by a handler before hookinbox's, not by the server) is forwarded under
// its canonical name, and left out as its canonical name would be, as is
// a header that the Connection header lists under any spelling.
func TestForwardHeaderNames(t *testing.T) {
	set, err := newSettings(Inbox{Name: "in", Forward: "http://127.0.0.1:1/hook"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		stored http.Header
		want   http.Header // besides hookinbox's own
	}{
		{
			name:   "lower-case name forwarded canonical",
			stored: http.Header{"x-multi": {"one", "two"}, "content-type": {"application/json"}},
			want:   http.Header{"X-Multi": {"one", "two"}, "Content-Type": {"application/json"}},
		},
		{
			name: "lower-case names of headers left out stay out",
			stored: http.Header{
				"connection": {"close"}, "keep-alive": {"timeout=5"}, "te": {"trailers"},
				"transfer-encoding": {"chunked"}, "upgrade": {"h2c"}, "trailer": {"X-T"},
				"host": {"sender.example"}, "content-length": {"999"}, "expect": {"100-continue"},
				"accept-encoding": {"br"}, "proxy-authorization": {"Basic Zm9v"},
				"hookinbox-attempt": {"77"}, "hookinbox-verified": {"spoofed"}, "X-Kept": {"yes"},
			},
			want: http.Header{"X-Kept": {"yes"}},
		},
		{
			name: "headers Connection lists are left out, whatever their spelling",
			stored: http.Header{
				"Connection":   {"keep-alive, x-conn-named", "X-OTHER"},
				"X-Conn-Named": {"drop me"}, "x-other": {"drop me too"}, "X-Kept": {"yes"},
			},
			want: http.Header{"X-Kept": {"yes"}},
		},
		{
			name:   "a lower-case Connection header is obeyed",
			stored: http.Header{"connection": {"X-Conn-Named"}, "X-Conn-Named": {"drop me"}, "X-Kept": {"yes"}},
			want:   http.Header{"X-Kept": {"yes"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &store.Event{ID: "ev1", Header: tt.stored, Verified: "stripe",
				ReceivedAt: time.Date(2026, 11, 3, 17, 5, 6, 0, time.UTC)}
			req, err := newRequest(t.Context(), set, e, 1)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want.Clone()
			want["Hookinbox-Id"] = []string{"ev1"}
			want["Hookinbox-Attempt"] = []string{"1"}
			want["Hookinbox-Received-At"] = []string{"2026-11-03T17:05:06Z"}
			want["Hookinbox-Verified"] = []string{"stripe"}
			if !reflect.DeepEqual(req.Header, want) {
				t.Errorf("forwarded header = %v, want %v", req.Header, want)
			}
		})
	}
}
