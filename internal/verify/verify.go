// Package verify checks that a webhook request comes from the sender it
// claims to come from. Every check is a pure function of the request's
// headers, body, URL and the current time: no clock, no storage and no
// Caddy of its own, so each scheme can be tested against its sender's
// published vectors and SDKs.
package verify

import (
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Request is what a verifier looks at. Body is the exact bytes received.
type Request struct {
	Method string
	// URL is the full URL the sender called (scheme, host, path, query), as
	// the sender saw it; schemes such as Twilio and Square sign it.
	URL    *url.URL
	Header http.Header
	Body   []byte
	Now    time.Time
}

// Result is what a request that passed tells the caller.
type Result struct {
	// Scheme is the name of the scheme that passed (for Hookinbox-Verified).
	Scheme string
	// EventID is the sender's own id for the event, when the scheme has
	// one; it is the default dedupe key. Empty when there is none.
	EventID string
	// Handshake, when set, is an answer to send at once instead of queueing
	// the request: a URL-verification challenge or a ping.
	Handshake *Handshake
}

// Handshake is an immediate answer to a sender's endpoint check.
type Handshake struct {
	Status      int
	ContentType string
	Body        []byte
}

// Rejection says why a request failed verification. Reason is a short
// code that names what failed, never the expected value; Status is 401
// for a missing or wrong credential and 400 for one that cannot be parsed.
type Rejection struct {
	Reason string
	Status int
}

func (r *Rejection) Error() string { return fmt.Sprintf("verification failed: %s", r.Reason) }

// Reason codes. They are part of the contract: they appear in the 4xx
// answer, in logs and in {http.hookinbox.reject_reason}.
const (
	ReasonTokenMissing       = "token_missing"
	ReasonTokenMismatch      = "token_mismatch"
	ReasonSignatureMissing   = "signature_missing"
	ReasonSignatureMalformed = "signature_malformed"
	ReasonSignatureMismatch  = "signature_mismatch"
	ReasonTimestampMissing   = "timestamp_missing"
	ReasonTimestampMalformed = "timestamp_malformed"
	ReasonTimestampExpired   = "timestamp_expired"
	ReasonTimestampInFuture  = "timestamp_in_future"
	// ReasonIDMissing: a scheme that signs the sender's message id (Standard
	// Webhooks) got no id header.
	ReasonIDMissing = "id_missing"
)

// unauthorized and malformed build the two kinds of rejection.
func unauthorized(reason string) *Rejection {
	return &Rejection{Reason: reason, Status: http.StatusUnauthorized}
}

func malformed(reason string) *Rejection {
	return &Rejection{Reason: reason, Status: http.StatusBadRequest}
}

// Verifier checks one scheme. Verify returns a *Rejection as its error
// when the request does not pass.
type Verifier interface {
	Verify(r *Request) (Result, error)
}
