package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// newZoom checks Zoom's x-zm-signature: "v0=" and the hex HMAC-SHA256 of
// "v0:<x-zm-request-timestamp>:<body>" under the app's secret token; the
// timestamp must be within 5 minutes. Zoom's endpoint.url_validation
// challenge is answered at once, once its signature checks out, with the
// plainToken and its hex HMAC-SHA256 under the same secret. Zoom events
// carry no event id: use dedupe_key.
func newZoom(c Config) (Verifier, error) {
	tmpl, _ := parseTemplate("v0:{timestamp}:{body}")
	return fixedHMAC(c, hmacVerifier{
		scheme:    "zoom",
		header:    "X-Zm-Signature",
		prefix:    "v0=",
		hash:      sha256.New,
		enc:       hexEncoding,
		content:   tmpl,
		tsHeader:  "X-Zm-Request-Timestamp",
		window:    window(c, 5*time.Minute),
		handshake: zoomValidation,
		decorate: func(h http.Header, _ []byte) {
			h.Set("Content-Type", "application/json; charset=utf-8")
			h.Set("User-Agent", "Zoom Marketplace/1.0a")
		},
	})
}

// zoomValidation answers endpoint.url_validation.
func zoomValidation(r *Request, key []byte) *Handshake {
	if KeyFromJSON(r.Body, "event") != "endpoint.url_validation" {
		return nil
	}
	plain := KeyFromJSON(r.Body, "payload.plainToken")
	body, _ := json.Marshal(map[string]string{
		"plainToken":     plain,
		"encryptedToken": hex.EncodeToString(mac(sha256.New, key, []byte(plain))),
	})
	return &Handshake{Status: http.StatusOK, ContentType: "application/json", Body: body}
}

func zoomSample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"event":"meeting.started","event_ts":%d,"payload":{"account_id":"AAAAAAAAAAAAAAAAAAAAAA","object":{"id":"85551234567","uuid":%q,"host_id":"BBBBBBBBBBBBBBBBBBBBBB","topic":"hookinbox test","type":2,"start_time":%q,"timezone":"UTC","duration":30}}}`,
		now.UnixMilli(), id, now.UTC().Format(time.RFC3339))
}
