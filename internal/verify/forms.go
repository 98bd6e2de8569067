package verify

import (
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Typeform and Intercom sign the body alone, each with its own header.

// newTypeform checks Typeform-Signature: "sha256=" and the base64
// HMAC-SHA256 of the body under the webhook's secret. The event id is the
// body's event_id.
func newTypeform(c Config) (Verifier, error) {
	return fixedHMAC(c, hmacVerifier{
		scheme:  "typeform",
		header:  "Typeform-Signature",
		prefix:  "sha256=",
		hash:    sha256.New,
		enc:     base64Encoding,
		eventID: jsonEventID("event_id"),
		decorate: func(h http.Header, _ []byte) {
			h.Set("Content-Type", "application/json")
			h.Set("User-Agent", "Typeform Webhooks")
		},
	})
}

func typeformSample(id string, now time.Time) []byte {
	id = strings.ToUpper(strings.ReplaceAll(id, "-", ""))[:26]
	return fmt.Appendf(nil, `{"event_id":%q,"event_type":"form_response","form_response":{"form_id":"lT4Z3j","token":%q,"submitted_at":%q,"definition":{"id":"lT4Z3j","title":"hookinbox test"},"answers":[{"type":"text","text":"Hello from hookinbox","field":{"id":"Ab1","type":"short_text"}}]}}`,
		id, strings.ToLower(id), now.UTC().Format(time.RFC3339))
}

// newIntercom checks Intercom's X-Hub-Signature: "sha1=" and the hex
// HMAC-SHA1 of the body under the app's client secret. The event id is the
// notification's "id".
func newIntercom(c Config) (Verifier, error) {
	return fixedHMAC(c, hmacVerifier{
		scheme:  "intercom",
		header:  "X-Hub-Signature",
		prefix:  "sha1=",
		hash:    sha1.New,
		enc:     hexEncoding,
		eventID: jsonEventID("id"),
		decorate: func(h http.Header, _ []byte) {
			h.Set("Content-Type", "application/json")
			h.Set("User-Agent", "Intercom-Webhook/1.0")
		},
	})
}

func intercomSample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"type":"notification_event","app_id":"abc123","data":{"type":"notification_event_data","item":{"type":"ping","message":"Hello from hookinbox"}},"id":"notif_%s","topic":"ping","delivery_status":"pending","delivery_attempts":1,"delivered_at":0,"first_sent_at":%d,"created_at":%d}`,
		id, now.Unix(), now.Unix())
}
