package verify

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"time"
)

// linearVerifier checks Linear's Linear-Signature: the bare hex
// HMAC-SHA256 of the body under the webhook's signing secret. Linear puts
// its timestamp in the signed body (webhookTimestamp, in milliseconds) and
// asks receivers to reject deliveries more than a minute away. The event
// id is the Linear-Delivery header.
type linearVerifier struct {
	hmacVerifier
	bodyWindow time.Duration
}

func newLinear(c Config) (Verifier, error) {
	v, err := fixedHMAC(c, hmacVerifier{
		scheme:  "linear",
		header:  "Linear-Signature",
		hash:    sha256.New,
		enc:     hexEncoding,
		eventID: headerEventID("Linear-Delivery"),
		decorate: func(h http.Header, body []byte) {
			h.Set("Linear-Delivery", newID())
			h.Set("Linear-Event", KeyFromJSON(body, "type"))
			h.Set("Content-Type", "application/json; charset=utf-8")
			h.Set("User-Agent", "Linear-Webhook")
		},
	})
	if err != nil {
		return nil, err
	}
	return &linearVerifier{hmacVerifier: *v.(*hmacVerifier), bodyWindow: window(c, time.Minute)}, nil
}

func (v *linearVerifier) Verify(r *Request) (Result, error) {
	res, err := v.hmacVerifier.Verify(r)
	if err != nil {
		return Result{}, err
	}
	if v.bodyWindow > 0 {
		ts := KeyFromJSON(r.Body, "webhookTimestamp")
		if ts == "" {
			return Result{}, unauthorized(ReasonTimestampMissing)
		}
		if !isDigits(ts) || len(ts) > 18 {
			return Result{}, malformed(ReasonTimestampMalformed)
		}
		signed, _ := unixSecondsOrMillis(ts)
		if err := checkTime(signed, r.Now, v.bodyWindow); err != nil {
			return Result{}, err
		}
	}
	return res, nil
}

func linearSample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"action":"create","type":"Issue","createdAt":%q,"data":{"id":%q,"title":"hookinbox test","identifier":"ENG-1"},"url":"https://linear.app/team/issue/ENG-1","organizationId":"00000000-0000-0000-0000-000000000000","webhookTimestamp":%d,"webhookId":"00000000-0000-0000-0000-000000000001"}`,
		now.UTC().Format("2006-01-02T15:04:05.000Z"), id, now.UnixMilli())
}
