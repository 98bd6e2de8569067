package verify

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// standardVerifier checks Standard Webhooks (https://www.standardwebhooks.com),
// the scheme of Svix and of the many senders built on it (Clerk, Resend,
// GitLab's signing tokens, …):
//
//	webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek
//	webhook-timestamp: 1614265330
//	webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,…
//
// Each v1 is the base64 HMAC-SHA256 of "<id>.<timestamp>.<body>" under the
// secret, which is base64 after its "whsec_" prefix. Svix sends the same
// headers named svix-id, svix-timestamp and svix-signature. The event id
// is the webhook-id, which stays the same across redeliveries.
type standardVerifier struct {
	keys   [][]byte
	window time.Duration
}

func newStandard(c Config) (Verifier, error) {
	if err := needNo(c, allOptions...); err != nil {
		return nil, err
	}
	keys := make([][]byte, len(c.Secrets))
	for i, s := range c.Secrets {
		k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err != nil || len(k) == 0 {
			return nil, fmt.Errorf("secret %d is not a Standard Webhooks secret (whsec_ followed by base64)", i+1)
		}
		keys[i] = k
	}
	return &standardVerifier{keys: keys, window: window(c, 5*time.Minute)}, nil
}

func (v *standardVerifier) Verify(r *Request) (Result, error) {
	prefix := "Webhook-"
	if r.Header.Get("Webhook-Signature") == "" && r.Header.Get("Svix-Signature") != "" {
		prefix = "Svix-"
	}
	id := r.Header.Get(prefix + "Id")
	ts := r.Header.Get(prefix + "Timestamp")
	sigs, rej := parseStandardSignatures(r.Header.Get(prefix + "Signature"))
	switch {
	case rej != nil:
		return Result{}, rej
	case id == "":
		return Result{}, unauthorized(ReasonIDMissing)
	case ts == "":
		return Result{}, unauthorized(ReasonTimestampMissing)
	}
	signed, ok := unixSeconds(ts)
	if !ok {
		return Result{}, malformed(ReasonTimestampMalformed)
	}
	if !anySignature(v.keys, sigs, func(k []byte) []byte { return mac(sha256.New, k, []byte(id+"."+ts+"."), r.Body) }) {
		return Result{}, unauthorized(ReasonSignatureMismatch)
	}
	if err := checkTime(signed, r.Now, v.window); err != nil {
		return Result{}, err
	}
	return Result{Scheme: "standard", EventID: id}, nil
}

// parseStandardSignatures reads a webhook-signature header: a
// space-separated list of "<version>,<base64>". Only v1 (HMAC-SHA256)
// is checked; other versions, such as the asymmetric v1a, are skipped.
func parseStandardSignatures(header string) (sigs [][]byte, rej *Rejection) {
	if header == "" {
		return nil, unauthorized(ReasonSignatureMissing)
	}
	parsed, sawV1 := false, false
	for _, entry := range strings.Fields(header) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok {
			continue
		}
		parsed = true
		if version != "v1" {
			continue
		}
		sawV1 = true
		if b, err := base64.StdEncoding.DecodeString(sig); err == nil && len(b) == sha256.Size {
			sigs = append(sigs, b)
		}
	}
	switch {
	case !parsed:
		return nil, malformed(ReasonSignatureMalformed)
	case !sawV1:
		return nil, unauthorized(ReasonSignatureMissing)
	case len(sigs) == 0:
		return nil, malformed(ReasonSignatureMalformed)
	}
	return sigs, nil
}

func (v *standardVerifier) sign(body []byte, _ *url.URL, now time.Time) (http.Header, error) {
	id := "msg_" + strings.ReplaceAll(newID(), "-", "")
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := mac(sha256.New, v.keys[0], []byte(id+"."+ts+"."), body)
	h := http.Header{}
	h.Set("Webhook-Id", id)
	h.Set("Webhook-Timestamp", ts)
	h.Set("Webhook-Signature", "v1,"+base64.StdEncoding.EncodeToString(sig))
	h.Set("Content-Type", "application/json")
	return h, nil
}

func standardSample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"type":"hookinbox.test","timestamp":%q,"data":{"id":%q,"message":"Hello from hookinbox"}}`,
		now.UTC().Format("2006-01-02T15:04:05.000000Z"), id)
}
