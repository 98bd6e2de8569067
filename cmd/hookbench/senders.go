package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// scheme is how the benchmark's events prove themselves to the inbox: the
// body of each event, the headers that sign it, and the inbox's matching
// verify directive. Every target gets the same requests (same size, same
// headers), so the figures differ only by what the server does with them.
type scheme interface {
	// describe names the bodies in the table's heading.
	describe() string
	body(seq int64) []byte
	sign(h http.Header, body []byte, now time.Time)
	// verify is the inbox's verify directive for these events.
	verify() string
}

// newScheme returns the named scheme's event maker, with bodies of size
// bytes. run makes the ids of this run differ from those of earlier runs on
// the same storage, which matters when a store is reused (the scale test
// restarts on its own data).
func newScheme(name string, size int, run string) (scheme, error) {
	switch name {
	case "hotmart":
		return newHottok(benchHottok, size, run)
	case "stripe":
		return newSigner(benchSecret, size, run)
	}
	return nil, fmt.Errorf("-sender %q: hotmart or stripe", name)
}

// benchSecret and benchHottok are the secrets of every benchmark inbox. They
// are not real secrets: they only have to match between the Caddyfile and
// the sender.
const (
	benchSecret = "whsec_hookbench0000000000000000000000"
	benchHottok = "hookbench-hottok-0000000000000000"
)

// seqDigits is the fixed width of the sequence number inside a body, so that
// every body has exactly the requested size.
const seqDigits = 12

// fixedBody makes event bodies of one size, each with its own event id:
// hookinbox dedupes on the body's "id", and a benchmark that sent the same
// id twice would measure the dedupe path, not the store. prefix and suffix
// surround the sequence number; they are built once so a body costs one
// copy, not a JSON encoding.
type fixedBody struct {
	prefix, suffix []byte
}

// newFixedBody pads the description field (between head and tail) so that
// prefix + number + head + padding + tail is size bytes.
func newFixedBody(size int, prefix, head, tail string) (fixedBody, error) {
	pad := size - len(prefix) - seqDigits - len(head) - len(tail)
	if pad < 0 {
		return fixedBody{}, fmt.Errorf("body size %d is below the %d bytes of a minimal event",
			size, size-pad)
	}
	return fixedBody{prefix: []byte(prefix), suffix: []byte(head + strings.Repeat("x", pad) + tail)}, nil
}

// body returns the event body numbered seq.
func (f fixedBody) body(seq int64) []byte {
	b := make([]byte, 0, len(f.prefix)+seqDigits+len(f.suffix))
	b = append(b, f.prefix...)
	digits := strconv.FormatInt(seq, 10)
	for range seqDigits - len(digits) {
		b = append(b, '0')
	}
	b = append(b, digits...)
	return append(b, f.suffix...)
}

// hottok sends Hotmart's webhook 2.0: a JSON purchase event whose "id" is
// the event id, and the account's hottok in X-HOTMART-HOTTOK. Hotmart is
// hookinbox's main audience, and a static token is the cheapest check, so
// these rows show the store's cost more than the verifier's.
type hottok struct {
	fixedBody
	token string
}

func newHottok(token string, size int, run string) (*hottok, error) {
	f, err := newFixedBody(size,
		`{"id":"hb-`+run+`-`,
		`","creation_date":1764633600000,"event":"PURCHASE_APPROVED","version":"2.0.0","data":{"product":{"id":0,"name":"hookbench product"},`+
			`"buyer":{"email":"buyer@example.com","name":"Test Buyer"},"purchase":{"transaction":"HP1764633600","status":"APPROVED",`+
			`"price":{"value":97.0,"currency_value":"BRL"},"description":"`,
		`"}}}`)
	if err != nil {
		return nil, err
	}
	return &hottok{fixedBody: f, token: token}, nil
}

func (*hottok) describe() string { return "Hotmart bodies with their hottok" }

func (h *hottok) sign(hd http.Header, _ []byte, _ time.Time) {
	hd.Set("Content-Type", "application/json")
	hd.Set("X-Hotmart-Hottok", h.token)
}

func (h *hottok) verify() string { return "verify hotmart " + h.token }

// signer makes Stripe-signed event bodies.
type signer struct {
	fixedBody
	secret []byte
}

func newSigner(secret string, size int, run string) (*signer, error) {
	f, err := newFixedBody(size,
		`{"id":"evt_`+run+`_`,
		`","object":"event","api_version":"2025-09-30.clover","type":"payment_intent.succeeded",`+
			`"livemode":false,"pending_webhooks":1,"data":{"object":{"object":"payment_intent","amount":2000,`+
			`"currency":"usd","status":"succeeded","description":"`,
		`"}}}`)
	if err != nil {
		return nil, err
	}
	return &signer{fixedBody: f, secret: []byte(secret)}, nil
}

func (*signer) describe() string { return "Stripe-signed bodies" }

func (s *signer) sign(h http.Header, body []byte, now time.Time) {
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Stripe-Signature", s.header(body, now))
}

func (s *signer) verify() string { return "verify stripe " + string(s.secret) }

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
