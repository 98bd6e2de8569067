package verify

import (
	"errors"

	"net/http"
	"net/url"
	"time"
)

// tokenVerifier checks a static token that the sender repeats on every
// request, in a header or a query parameter. It is the whole of the
// token scheme and of the senders that work this way (hotmart, hubla,
// gitlab, asaas).
type tokenVerifier struct {
	scheme string
	header string // one of header or query is set
	query  string
	tokens [][]byte
	// eventID finds the sender's event id, when it has one.
	eventID func(r *Request) string
	// decorate adds the other headers the sender sends, for Sign.
	decorate func(h http.Header, body []byte)
}

func newToken(c Config) (Verifier, error) {
	if err := only(c, "header", "query"); err != nil {
		return nil, err
	}
	switch {
	case c.Header == "" && c.Query == "":
		return nil, errors.New("say where the token is: a header or a query parameter")
	case c.Header != "" && c.Query != "":
		return nil, errors.New("the token is either in a header or in a query parameter, not both")
	}
	return &tokenVerifier{
		scheme:  "token",
		header:  c.Header,
		query:   c.Query,
		tokens:  secretBytes(c.Secrets),
		eventID: func(*Request) string { return "" },
	}, nil
}

// headerToken builds the verifier of a sender that puts a fixed token in
// a fixed header.
func headerToken(scheme, header string, c Config, eventID func(r *Request) string, decorate func(h http.Header, body []byte)) (Verifier, error) {
	if err := needNo(c, allOptions...); err != nil {
		return nil, err
	}
	return &tokenVerifier{scheme: scheme, header: header, tokens: secretBytes(c.Secrets), eventID: eventID, decorate: decorate}, nil
}

func (v *tokenVerifier) Verify(r *Request) (Result, error) {
	var got string
	if v.header != "" {
		got = r.Header.Get(v.header)
	} else if r.URL != nil {
		got = r.URL.Query().Get(v.query)
	}
	if err := checkToken(got, v.tokens); err != nil {
		return Result{}, err
	}
	return Result{Scheme: v.scheme, EventID: v.eventID(r)}, nil
}

func (v *tokenVerifier) sign(body []byte, target *url.URL, now time.Time) (http.Header, error) {
	h := http.Header{}
	if v.decorate != nil {
		v.decorate(h, body)
	}
	if v.header != "" {
		h.Set(v.header, string(v.tokens[0]))
		return h, nil
	}
	q := target.Query()
	q.Set(v.query, string(v.tokens[0]))
	target.RawQuery = q.Encode()
	return h, nil
}

// headerEventID returns an eventID function reading the named header.
func headerEventID(name string) func(r *Request) string {
	return func(r *Request) string { return KeyFromHeader(r.Header, name) }
}

// jsonEventID returns an eventID function reading a field of the body.
func jsonEventID(field string) func(r *Request) string {
	return func(r *Request) string { return KeyFromJSON(r.Body, field) }
}
