package verify

import (
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// t0 is the fixed "now" of the tests.
var t0 = time.Unix(1_760_000_000, 0)

func mustNew(t *testing.T, c Config) Verifier {
	t.Helper()
	v, err := New(c)
	if err != nil {
		t.Fatalf("New(%s): %v", c.Scheme, err)
	}
	return v
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// signed builds a request the way the sender would, through Sign.
func signed(t *testing.T, c Config, body []byte, target string, now time.Time) *Request {
	t.Helper()
	u := mustURL(t, target)
	h, err := Sign(c, body, u, now)
	if err != nil {
		t.Fatalf("Sign(%s): %v", c.Scheme, err)
	}
	return &Request{Method: http.MethodPost, URL: u, Header: h, Body: body, Now: now}
}

// clone copies a request deeply enough for a case to change it.
func (r *Request) clone() *Request {
	c := *r
	c.Header = r.Header.Clone()
	c.Body = append([]byte(nil), r.Body...)
	if r.URL != nil {
		u := *r.URL
		c.URL = &u
	}
	return &c
}

// rejectCase changes a valid request and says how it must be judged.
type rejectCase struct {
	name   string
	change func(r *Request)
	reason string // "" means accepted
	status int    // checked when reason is set; 0 means 401
}

// checkCases runs each case on a fresh copy of good.
func checkCases(t *testing.T, v Verifier, good *Request, cases []rejectCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := good.clone()
			if tc.change != nil {
				tc.change(r)
			}
			_, err := v.Verify(r)
			wantReason(t, err, tc.reason, tc.status)
		})
	}
}

func wantReason(t *testing.T, err error, reason string, status int) {
	t.Helper()
	if reason == "" {
		if err != nil {
			t.Fatalf("rejected: %v; want accepted", err)
		}
		return
	}
	var rej *Rejection
	if !errors.As(err, &rej) {
		t.Fatalf("got %v; want rejection %s", err, reason)
	}
	if status == 0 {
		status = http.StatusUnauthorized
	}
	if rej.Reason != reason || rej.Status != status {
		t.Fatalf("got %s/%d; want %s/%d", rej.Reason, rej.Status, reason, status)
	}
}

func setHeader(name, value string) func(*Request) {
	return func(r *Request) { r.Header.Set(name, value) }
}

func delHeader(name string) func(*Request) {
	return func(r *Request) { r.Header.Del(name) }
}

func appendBody(r *Request) { r.Body = append(r.Body, ' ') }

func at(now time.Time) func(*Request) { return func(r *Request) { r.Now = now } }
