package store

import (
	"net/http"
	"time"
)

// State is where an event is in its life.
type State string

const (
	// Pending: waiting for its next attempt (which may be due now).
	Pending State = "pending"
	// Delivering: an attempt is in flight. Kept in memory only: after a
	// crash a delivering event is pending again and is delivered again.
	Delivering State = "delivering"
	// Delivered: the app accepted it. Kept for the retention period.
	Delivered State = "delivered"
	// Dead: every attempt failed. Kept for the retention period; replayable.
	Dead State = "dead"
)

// Event is one webhook request as received, with its delivery state.
type Event struct {
	ID         string      `json:"id"`
	Inbox      string      `json:"inbox"`
	ReceivedAt time.Time   `json:"received_at"`
	Method     string      `json:"method"`
	Path       string      `json:"path"`
	RawQuery   string      `json:"raw_query,omitempty"`
	Header     http.Header `json:"header"`
	Body       []byte      `json:"-"`
	// Verified is the scheme that passed, or "none".
	Verified string `json:"verified"`
	// DedupeKey is the sender's own event id, if known.
	DedupeKey string `json:"dedupe_key,omitempty"`

	State State `json:"state"`
	// Attempts is how many attempts have been made so far.
	Attempts int `json:"attempts"`
	// ReplayedAfter is how many attempts had been made when the event was
	// last replayed: the retry schedule starts over after them.
	ReplayedAfter int `json:"replayed_after,omitempty"`
	// NextAttemptAt is when a pending event is due.
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
	// FinishedAt is when it became delivered or dead.
	FinishedAt time.Time `json:"finished_at,omitzero"`

	// request is where the journal holds the headers and body
	// (requests.go); zero for a request kept in Badger by an older store.
	request requestRef
}

// Outcome classes of an attempt, from the senders' own troubleshooting tables.
const (
	OutcomeOK          = "ok"
	OutcomeConnect     = "connect"
	OutcomeTLS         = "tls"
	OutcomeTimeout     = "timeout"
	OutcomeReset       = "reset"
	OutcomeRedirect    = "redirect"
	OutcomeClientError = "client_error"
	OutcomeServerError = "server_error"
)

// Attempt is the record of one delivery attempt.
type Attempt struct {
	// N counts from 1.
	N        int           `json:"n"`
	At       time.Time     `json:"at"`
	Duration time.Duration `json:"duration"`
	Outcome  string        `json:"outcome"`
	Status   int           `json:"status,omitempty"`
	// Response holds the first 1 KiB of the response body.
	Response []byte `json:"response,omitempty"`
	// Error is the transport error, if any (never holds a secret: it is
	// built from the forward URL and the network error).
	Error string `json:"error,omitempty"`
}

// Next says what happens to an event after an attempt.
type Next struct {
	// Delivered: the attempt succeeded.
	Delivered bool
	// Dead: no attempt is left.
	Dead bool
	// RetryAt: when the next attempt is due (when neither of the above).
	RetryAt time.Time
}
