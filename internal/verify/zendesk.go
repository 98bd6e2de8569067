package verify

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"time"
)

// newZendesk checks Zendesk's X-Zendesk-Webhook-Signature: the base64
// HMAC-SHA256 of X-Zendesk-Webhook-Signature-Timestamp (an RFC 3339 time)
// followed directly by the body, under the webhook's signing secret.
// Zendesk states no replay window, so none is checked unless tolerance is
// set. The event id is X-Zendesk-Webhook-Invocation-Id.
func newZendesk(c Config) (Verifier, error) {
	tmpl, _ := parseTemplate("{timestamp}{body}")
	return fixedHMAC(c, hmacVerifier{
		scheme:    "zendesk",
		header:    "X-Zendesk-Webhook-Signature",
		hash:      sha256.New,
		enc:       base64Encoding,
		content:   tmpl,
		tsHeader:  "X-Zendesk-Webhook-Signature-Timestamp",
		parseTime: rfc3339,
		window:    window(c, 0),
		eventID:   headerEventID("X-Zendesk-Webhook-Invocation-Id"),
		decorate: func(h http.Header, _ []byte) {
			h.Set("X-Zendesk-Webhook-Id", "01HOOKINBOXTEST")
			h.Set("X-Zendesk-Webhook-Invocation-Id", newID())
			h.Set("Content-Type", "application/json")
		},
	})
}

func rfc3339(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, s)
	return t, err == nil
}

func zendeskSample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"type":"zen:event-type:ticket.created","account_id":1,"id":%q,"time":%q,"zendesk_event_version":"2022-11-06","subject":"zen:ticket:1","detail":{"id":"1","subject":"hookinbox test","status":"NEW"},"event":{}}`,
		id, now.UTC().Format(time.RFC3339))
}
