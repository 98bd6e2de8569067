package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// pagerdutyVerifier checks PagerDuty's V3 webhook signature:
//
//	X-PagerDuty-Signature: v1=f03de6f6…,v1=130dcacb…
//
// Each v1 is the hex HMAC-SHA256 of the body under the subscription's
// secret; while a secret is rotated the header carries one per secret.
// There is no timestamp. The event id is X-Webhook-Id, the same on every
// retry.
type pagerdutyVerifier struct {
	keys [][]byte
}

func newPagerDuty(c Config) (Verifier, error) {
	if err := needNo(c, allOptions...); err != nil {
		return nil, err
	}
	return &pagerdutyVerifier{keys: secretBytes(c.Secrets)}, nil
}

func (v *pagerdutyVerifier) Verify(r *Request) (Result, error) {
	sigs, rej := parsePagerDutySignatures(r.Header.Get("X-PagerDuty-Signature"))
	if rej != nil {
		return Result{}, rej
	}
	if !anySignature(v.keys, sigs, func(k []byte) []byte { return mac(sha256.New, k, r.Body) }) {
		return Result{}, unauthorized(ReasonSignatureMismatch)
	}
	return Result{Scheme: "pagerduty", EventID: KeyFromHeader(r.Header, "X-Webhook-Id")}, nil
}

// parsePagerDutySignatures reads the comma-separated v1=<hex> list;
// entries of other versions are skipped, as in PagerDuty's Go client.
func parsePagerDutySignatures(header string) ([][]byte, *Rejection) {
	if header == "" {
		return nil, unauthorized(ReasonSignatureMissing)
	}
	var sigs [][]byte
	for _, entry := range strings.Split(header, ",") {
		hexSig, ok := strings.CutPrefix(strings.TrimSpace(entry), "v1=")
		if !ok {
			continue
		}
		if sig, err := hex.DecodeString(hexSig); err == nil && len(sig) == sha256.Size {
			sigs = append(sigs, sig)
		}
	}
	if len(sigs) == 0 {
		return nil, malformed(ReasonSignatureMalformed)
	}
	return sigs, nil
}

func (v *pagerdutyVerifier) sign(body []byte, _ *url.URL, _ time.Time) (http.Header, error) {
	h := http.Header{}
	h.Set("X-PagerDuty-Signature", "v1="+hex.EncodeToString(mac(sha256.New, v.keys[0], body)))
	h.Set("X-Webhook-Id", newID())
	h.Set("X-Webhook-Subscription", "PHOOKIN")
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "PagerDuty-Webhook/V3.0")
	return h, nil
}

func pagerdutySample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"event":{"id":%q,"event_type":"incident.triggered","resource_type":"incident","occurred_at":%q,"agent":null,"client":null,"data":{"id":"Q1HOOKINBOX","type":"incident","title":"hookinbox test","status":"triggered"}}}`,
		id, now.UTC().Format("2006-01-02T15:04:05.000Z"))
}
