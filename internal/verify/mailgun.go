package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// mailgunVerifier checks Mailgun's webhook signature, which travels in the
// body: signature.signature is the hex HMAC-SHA256 of signature.timestamp
// followed by signature.token, under the account's webhook signing key.
// (Legacy form-encoded webhooks carry the same three fields as form
// parameters.) The body itself is not signed, so this proves only that
// the request came from Mailgun. Mailgun states no replay window, so none
// is checked unless tolerance is set. The event id is event-data.id.
type mailgunVerifier struct {
	keys   [][]byte
	window time.Duration
}

func newMailgun(c Config) (Verifier, error) {
	if err := needNo(c, allOptions...); err != nil {
		return nil, err
	}
	return &mailgunVerifier{keys: secretBytes(c.Secrets), window: window(c, 0)}, nil
}

func (v *mailgunVerifier) Verify(r *Request) (Result, error) {
	ts, token, sigHex := mailgunFields(r.Body)
	switch {
	case sigHex == "":
		return Result{}, unauthorized(ReasonSignatureMissing)
	case ts == "":
		return Result{}, unauthorized(ReasonTimestampMissing)
	case token == "":
		return Result{}, malformed(ReasonSignatureMalformed)
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil || len(sig) != sha256.Size {
		return Result{}, malformed(ReasonSignatureMalformed)
	}
	if !anyKey(v.keys, sig, func(k []byte) []byte { return mac(sha256.New, k, []byte(ts), []byte(token)) }) {
		return Result{}, unauthorized(ReasonSignatureMismatch)
	}
	if err := checkUnixTime(ts, r.Now, v.window); err != nil {
		return Result{}, err
	}
	return Result{Scheme: "mailgun", EventID: KeyFromJSON(r.Body, "event-data.id")}, nil
}

// mailgunFields finds the signature fields in a JSON or a form body.
func mailgunFields(body []byte) (ts, token, sig string) {
	if json.Valid(body) {
		return KeyFromJSON(body, "signature.timestamp"), KeyFromJSON(body, "signature.token"), KeyFromJSON(body, "signature.signature")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return "", "", ""
	}
	return form.Get("timestamp"), form.Get("token"), form.Get("signature")
}

// mailgunUnsigned stands for the signature in a sample body until Sign
// writes it; both are 64 hex digits, so the body keeps its length.
var mailgunUnsigned = bytes.Repeat([]byte("0"), 2*sha256.Size)

// sign returns Mailgun's headers. Mailgun signs inside the body, so Sign
// writes the signature, in place, into a body made by SampleBody("mailgun").
func (v *mailgunVerifier) sign(body []byte, _ *url.URL, _ time.Time) (http.Header, error) {
	ts, token, sig := mailgunFields(body)
	if sig != string(mailgunUnsigned) {
		return nil, errors.New("mailgun signs inside the body: sign a body made by SampleBody(\"mailgun\")")
	}
	at := bytes.Index(body, mailgunUnsigned)
	copy(body[at:], hex.EncodeToString(mac(sha256.New, v.keys[0], []byte(ts), []byte(token))))
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "mailgun/treq-16.12.0")
	return h, nil
}

func mailgunSample(id string, now time.Time) []byte {
	token := hexID(newID()) + hexID(newID())[:18]
	return fmt.Appendf(nil, `{"signature":{"timestamp":"%d","token":%q,"signature":%q},"event-data":{"id":%q,"timestamp":%d.0,"event":"delivered","recipient":"recipient@example.com","message":{"headers":{"message-id":"hookinbox-test@example.com"}}}}`,
		now.Unix(), token, mailgunUnsigned, id, now.Unix())
}
