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

// paddleVerifier checks Paddle Billing's Paddle-Signature header:
//
//	Paddle-Signature: ts=1671552777;h1=eb4d0dc8…
//
// Each h1 is the hex HMAC-SHA256 of "<ts>:<body>" under the notification
// destination's secret key (pdl_ntfset_…); during a secret rotation the
// header carries one h1 per live key. The event id is the body's
// event_id.
type paddleVerifier struct {
	keys   [][]byte
	window time.Duration
}

func newPaddle(c Config) (Verifier, error) {
	if err := needNo(c, allOptions...); err != nil {
		return nil, err
	}
	return &paddleVerifier{keys: secretBytes(c.Secrets), window: window(c, 5*time.Minute)}, nil
}

func (v *paddleVerifier) Verify(r *Request) (Result, error) {
	ts, sigs, rej := parsePaddleSignature(r.Header.Get("Paddle-Signature"))
	if rej != nil {
		return Result{}, rej
	}
	signed, ok := unixSeconds(ts)
	if !ok {
		return Result{}, malformed(ReasonTimestampMalformed)
	}
	if !anySignature(v.keys, sigs, func(k []byte) []byte { return mac(sha256.New, k, []byte(ts+":"), r.Body) }) {
		return Result{}, unauthorized(ReasonSignatureMismatch)
	}
	if err := checkTime(signed, r.Now, v.window); err != nil {
		return Result{}, err
	}
	return Result{Scheme: "paddle", EventID: KeyFromJSON(r.Body, "event_id")}, nil
}

// parsePaddleSignature splits a Paddle-Signature header into its
// timestamp and its decodable h1 signatures.
func parsePaddleSignature(header string) (ts string, sigs [][]byte, rej *Rejection) {
	return parseSignatureList(header, ";", "ts", "h1")
}

func (v *paddleVerifier) sign(body []byte, _ *url.URL, now time.Time) (http.Header, error) {
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := mac(sha256.New, v.keys[0], []byte(ts+":"), body)
	h := http.Header{}
	h.Set("Paddle-Signature", "ts="+ts+";h1="+hex.EncodeToString(sig))
	h.Set("Content-Type", "application/json")
	return h, nil
}

func paddleSample(id string, now time.Time) []byte {
	id = strings.ReplaceAll(id, "-", "")
	return fmt.Appendf(nil, `{"event_id":"evt_%s","event_type":"transaction.completed","occurred_at":%q,"notification_id":"ntf_%s","data":{"id":"txn_%s","status":"completed","currency_code":"USD","origin":"web"}}`,
		id[:26], now.UTC().Format("2006-01-02T15:04:05.000000Z"), id[6:32], id[2:28])
}
