package verify

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// newSlack checks Slack's request signing: X-Slack-Signature is "v0=" and
// the hex HMAC-SHA256 of "v0:<X-Slack-Request-Timestamp>:<body>" under the
// app's signing secret; the timestamp must be within 5 minutes. The Events
// API's url_verification request is answered at once with its challenge,
// once its signature checks out. The event id is the body's event_id
// (Events API); slash commands and interactions have none.
func newSlack(c Config) (Verifier, error) {
	tmpl, _ := parseTemplate("v0:{timestamp}:{body}")
	return fixedHMAC(c, hmacVerifier{
		scheme:   "slack",
		header:   "X-Slack-Signature",
		prefix:   "v0=",
		hash:     sha256.New,
		enc:      hexEncoding,
		content:  tmpl,
		tsHeader: "X-Slack-Request-Timestamp",
		window:   window(c, 5*time.Minute),
		eventID:  jsonEventID("event_id"),
		handshake: func(r *Request, _ []byte) *Handshake {
			if KeyFromJSON(r.Body, "type") != "url_verification" {
				return nil
			}
			return &Handshake{
				Status:      http.StatusOK,
				ContentType: "text/plain; charset=utf-8",
				Body:        []byte(KeyFromJSON(r.Body, "challenge")),
			}
		},
		decorate: func(h http.Header, _ []byte) {
			h.Set("Content-Type", "application/json")
			h.Set("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)")
		},
	})
}

func slackSample(id string, now time.Time) []byte {
	id = strings.ToUpper(strings.ReplaceAll(id, "-", ""))[:10]
	return fmt.Appendf(nil, `{"token":"hookinbox-test","team_id":"T0001","api_app_id":"A0001","event":{"type":"app_mention","user":"U0001","text":"<@U0002> hello from hookinbox","ts":"%d.000100","channel":"C0001","event_ts":"%d.000100"},"type":"event_callback","event_id":"Ev%s","event_time":%d}`,
		now.Unix(), now.Unix(), id, now.Unix())
}
