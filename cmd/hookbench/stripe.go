package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// benchSecret is the endpoint secret of every benchmark inbox. It is not a
// real secret: it only has to match between the Caddyfile and the signer.
const benchSecret = "whsec_hookbench0000000000000000000000"

// seqDigits is the fixed width of the sequence number inside a body, so that
// every body has exactly the requested size.
const seqDigits = 12

// signer makes Stripe-signed event bodies of a fixed size. Each body carries
// its own event id: hookinbox dedupes on the body's "id", and a benchmark
// that sent the same id twice would measure the dedupe path, not the store.
type signer struct {
	secret []byte
	// prefix and suffix surround the sequence number; they are built once
	// so a body costs one copy, not a JSON encoding.
	prefix, suffix []byte
}

// newSigner returns a signer of size-byte bodies. run makes the ids of this
// run differ from those of earlier runs on the same storage, which matters
// when a store is reused (the scale test restarts on its own data).
func newSigner(secret string, size int, run string) (*signer, error) {
	prefix := `{"id":"evt_` + run + `_`
	head := `","object":"event","api_version":"2025-09-30.clover","type":"payment_intent.succeeded",` +
		`"livemode":false,"pending_webhooks":1,"data":{"object":{"object":"payment_intent","amount":2000,` +
		`"currency":"usd","status":"succeeded","description":"`
	tail := `"}}}`
	pad := size - len(prefix) - seqDigits - len(head) - len(tail)
	if pad < 0 {
		return nil, fmt.Errorf("body size %d is below the %d bytes of a minimal Stripe event",
			size, size-pad)
	}
	return &signer{
		secret: []byte(secret),
		prefix: []byte(prefix),
		suffix: []byte(head + strings.Repeat("x", pad) + tail),
	}, nil
}

// body returns the event body numbered seq.
func (s *signer) body(seq int64) []byte {
	b := make([]byte, 0, len(s.prefix)+seqDigits+len(s.suffix))
	b = append(b, s.prefix...)
	digits := strconv.FormatInt(seq, 10)
	for range seqDigits - len(digits) {
		b = append(b, '0')
	}
	b = append(b, digits...)
	return append(b, s.suffix...)
}

// header returns the Stripe-Signature of body signed at now:
// t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>. Signing each request
// (a microsecond for 1 KiB) keeps the sender's cost in the measurement, as a
// real sender pays it too, and keeps every timestamp inside the tolerance.
func (s *signer) header(body []byte, now time.Time) string {
	ts := strconv.FormatInt(now.Unix(), 10)
	mac := hmac.New(sha256.New, s.secret)
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}
