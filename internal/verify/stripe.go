package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// stripeVerifier checks Stripe's Stripe-Signature header:
//
//	Stripe-Signature: t=1492774577,v1=5257a869…,v1=…,v0=…
//
// Each v1 is the hex HMAC-SHA256 of "<t>.<body>" under the endpoint's
// signing secret (whsec_…). While a secret is being rolled Stripe sends
// one v1 per live secret; one match is enough. The event id is the body's
// "id".
//
// Calendly copied the scheme under its own header name, so the same type
// checks both.
type stripeVerifier struct {
	scheme  string
	header  string
	keys    [][]byte
	window  time.Duration
	eventID func(r *Request) string
}

func newStripe(c Config) (Verifier, error) {
	if err := needNo(c, allOptions...); err != nil {
		return nil, err
	}
	return &stripeVerifier{scheme: "stripe", header: "Stripe-Signature", keys: secretBytes(c.Secrets),
		window: window(c, 5*time.Minute), eventID: jsonEventID("id")}, nil
}

// newCalendly checks Calendly-Webhook-Signature, "t=<ts>,v1=<hex>" where
// v1 is the HMAC-SHA256 of "<t>.<body>" under the webhook subscription's
// signing key; Calendly's own example rejects signatures older than 3
// minutes. Calendly events carry no event id: use dedupe_key.
func newCalendly(c Config) (Verifier, error) {
	if err := needNo(c, allOptions...); err != nil {
		return nil, err
	}
	return &stripeVerifier{scheme: "calendly", header: "Calendly-Webhook-Signature", keys: secretBytes(c.Secrets),
		window: window(c, 3*time.Minute), eventID: func(*Request) string { return "" }}, nil
}

func (v *stripeVerifier) Verify(r *Request) (Result, error) {
	ts, sigs, rej := parseStripeSignature(r.Header.Get(v.header))
	if rej != nil {
		return Result{}, rej
	}
	signed, ok := unixSeconds(ts)
	if !ok {
		return Result{}, malformed(ReasonTimestampMalformed)
	}
	if !anySignature(v.keys, sigs, func(k []byte) []byte { return mac(sha256.New, k, []byte(ts), []byte("."), r.Body) }) {
		return Result{}, unauthorized(ReasonSignatureMismatch)
	}
	if err := checkTime(signed, r.Now, v.window); err != nil {
		return Result{}, err
	}
	return Result{Scheme: v.scheme, EventID: v.eventID(r)}, nil
}

// parseStripeSignature splits a Stripe-Signature header into its
// timestamp and its decodable v1 signatures. Unknown keys (v0, future
// versions) are skipped, as Stripe's own libraries do.
func parseStripeSignature(header string) (ts string, sigs [][]byte, rej *Rejection) {
	return parseSignatureList(header, ",", "t", "v1")
}

// parseSignatureList reads the "<ts key>=<ts>,<sig key>=<hex>,…" headers
// of Stripe, Paddle (";"), Calendly and Mercado Pago: one timestamp and
// any number of hex HMAC-SHA256 signatures, other keys skipped. A
// signature that does not decode is skipped too, so one bad entry does not
// hide a good one; with no usable signature at all the header is
// malformed.
func parseSignatureList(header, sep, tsKey, sigKey string) (ts string, sigs [][]byte, rej *Rejection) {
	if header == "" {
		return "", nil, unauthorized(ReasonSignatureMissing)
	}
	sawSig := false
	for _, pair := range strings.Split(header, sep) {
		k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			return "", nil, malformed(ReasonSignatureMalformed)
		}
		switch k {
		case tsKey:
			if ts != "" || val == "" {
				return "", nil, malformed(ReasonSignatureMalformed)
			}
			ts = val
		case sigKey:
			sawSig = true
			if sig, err := hex.DecodeString(val); err == nil && len(sig) == sha256.Size {
				sigs = append(sigs, sig)
			}
		}
	}
	switch {
	case ts == "":
		return "", nil, malformed(ReasonSignatureMalformed)
	case !isDigits(ts):
		return "", nil, malformed(ReasonTimestampMalformed)
	case !sawSig:
		return "", nil, unauthorized(ReasonSignatureMissing)
	case len(sigs) == 0:
		return "", nil, malformed(ReasonSignatureMalformed)
	}
	return ts, sigs, nil
}

func (v *stripeVerifier) sign(body []byte, _ *url.URL, now time.Time) (http.Header, error) {
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := mac(sha256.New, v.keys[0], []byte(ts), []byte("."), body)
	h := http.Header{}
	h.Set(v.header, "t="+ts+",v1="+hex.EncodeToString(sig))
	h.Set("Content-Type", "application/json; charset=utf-8")
	return h, nil
}

func stripeSample(id string, now time.Time) []byte {
	id = strings.ReplaceAll(id, "-", "")
	return fmt.Appendf(nil, `{"id":"evt_%s","object":"event","api_version":"2025-09-30.clover","created":%d,"data":{"object":{"id":"pi_%s","object":"payment_intent","amount":2000,"currency":"usd","status":"succeeded"}},"livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},"type":"payment_intent.succeeded"}`,
		id[:24], now.Unix(), id[8:32])
}

func calendlySample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"created_at":%q,"created_by":"https://api.calendly.com/users/AAAAAAAAAAAAAAAA","event":"invitee.created","payload":{"uri":"https://api.calendly.com/scheduled_events/%s/invitees/%s","email":"invitee@example.com","name":"Test Invitee","status":"active","event":"https://api.calendly.com/scheduled_events/%s"}}`,
		now.UTC().Format("2006-01-02T15:04:05.000000Z"), id, id, id)
}
