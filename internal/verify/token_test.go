package verify

import (
	"net/http"
	"testing"
)

func TestVerifyHotmart(t *testing.T) {
	body := SampleBody("hotmart", t0)
	good := &Request{Method: "POST", Body: body, Now: t0, Header: http.Header{"X-Hotmart-Hottok": {"hottok-2"}}}
	v := mustNew(t, Config{Scheme: "hotmart", Secrets: []string{"hottok-1", "hottok-2"}})
	res, err := v.Verify(good)
	if err != nil || res.EventID == "" || res.EventID != KeyFromJSON(body, "id") || res.Scheme != "hotmart" {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	checkCases(t, v, good, []rejectCase{
		{name: "accepted with the second token"},
		{name: "accepted with the first token", change: setHeader("X-Hotmart-Hottok", "hottok-1")},
		{name: "wrong token", change: setHeader("X-Hotmart-Hottok", "hottok-3"), reason: ReasonTokenMismatch},
		{name: "prefix of the token", change: setHeader("X-Hotmart-Hottok", "hottok-"), reason: ReasonTokenMismatch},
		{name: "token missing", change: delHeader("X-Hotmart-Hottok"), reason: ReasonTokenMissing},
	})
}

func TestVerifyHubla(t *testing.T) {
	good := &Request{Method: "POST", Body: SampleBody("hubla", t0), Now: t0, Header: http.Header{
		"X-Hubla-Token": {"hubla-token"}, "X-Hubla-Idempotency": {"idem-1"}}}
	v := mustNew(t, Config{Scheme: "hubla", Secrets: []string{"hubla-token"}})
	res, err := v.Verify(good)
	if err != nil || res.EventID != "idem-1" {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	checkCases(t, v, good, []rejectCase{
		{name: "accepted"},
		{name: "accepted without an idempotency key", change: delHeader("X-Hubla-Idempotency")},
		{name: "wrong token", change: setHeader("X-Hubla-Token", "nope"), reason: ReasonTokenMismatch},
		{name: "token missing", change: delHeader("X-Hubla-Token"), reason: ReasonTokenMissing},
	})
}

func TestVerifyToken(t *testing.T) {
	t.Run("in a header", func(t *testing.T) {
		v := mustNew(t, Config{Scheme: "token", Secrets: []string{"s3cret"}, Header: "X-Token"})
		good := &Request{Method: "POST", URL: mustURL(t, "https://example.com/h"), Now: t0, Header: http.Header{"X-Token": {"s3cret"}}}
		checkCases(t, v, good, []rejectCase{
			{name: "accepted"},
			{name: "wrong", change: setHeader("X-Token", "s3cret "), reason: ReasonTokenMismatch},
			{name: "missing", change: delHeader("X-Token"), reason: ReasonTokenMissing},
			{name: "in the query instead", change: func(r *Request) {
				r.Header.Del("X-Token")
				r.URL = mustURL(t, "https://example.com/h?X-Token=s3cret")
			}, reason: ReasonTokenMissing},
		})
	})
	t.Run("in the query", func(t *testing.T) {
		v := mustNew(t, Config{Scheme: "token", Secrets: []string{"a&b=c"}, Query: "t"})
		good := &Request{Method: "POST", URL: mustURL(t, "https://example.com/h?x=1&t=a%26b%3Dc"), Now: t0, Header: http.Header{}}
		checkCases(t, v, good, []rejectCase{
			{name: "accepted"},
			{name: "wrong", change: func(r *Request) { r.URL = mustURL(t, "https://example.com/h?t=a") }, reason: ReasonTokenMismatch},
			{name: "missing", change: func(r *Request) { r.URL = mustURL(t, "https://example.com/h") }, reason: ReasonTokenMissing},
			{name: "no URL at all", change: func(r *Request) { r.URL = nil }, reason: ReasonTokenMissing},
		})
	})
}
