package verify

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// sendgridVerifier checks SendGrid's signed Event Webhook:
// X-Twilio-Email-Event-Webhook-Signature is the base64 ASN.1 ECDSA P-256
// signature of the SHA-256 of X-Twilio-Email-Event-Webhook-Timestamp
// followed by the body. The secret is the verification key SendGrid shows
// (a base64 public key). SendGrid states no replay window, so none is
// checked unless tolerance is set. A delivery is a batch of events, each
// with its own sg_event_id, so there is no single event id.
type sendgridVerifier struct {
	keys   []*ecdsa.PublicKey
	window time.Duration
}

func newSendGrid(c Config) (Verifier, error) {
	if err := needNo(c, allOptions...); err != nil {
		return nil, err
	}
	v := &sendgridVerifier{window: window(c, 0)}
	for i, s := range c.Secrets {
		der, ok := keyBytes(s)
		var pub any
		var err error
		if ok {
			pub, err = x509.ParsePKIXPublicKey(der)
		}
		k, isECDSA := pub.(*ecdsa.PublicKey)
		if !ok || err != nil || !isECDSA {
			return nil, fmt.Errorf("secret %d is not a SendGrid verification key (a base64 ECDSA public key)", i+1)
		}
		v.keys = append(v.keys, k)
	}
	return v, nil
}

// keyBytes reads a key written as PEM or as bare base64 DER.
func keyBytes(s string) ([]byte, bool) {
	s = strings.TrimSpace(s)
	if block, _ := pem.Decode([]byte(s)); block != nil {
		return block.Bytes, true
	}
	der, err := base64.StdEncoding.DecodeString(s)
	return der, err == nil
}

func (v *sendgridVerifier) Verify(r *Request) (Result, error) {
	header := r.Header.Get("X-Twilio-Email-Event-Webhook-Signature")
	ts := r.Header.Get("X-Twilio-Email-Event-Webhook-Timestamp")
	switch {
	case header == "":
		return Result{}, unauthorized(ReasonSignatureMissing)
	case ts == "":
		return Result{}, unauthorized(ReasonTimestampMissing)
	}
	sig, err := base64.StdEncoding.DecodeString(header)
	if err != nil || len(sig) == 0 {
		return Result{}, malformed(ReasonSignatureMalformed)
	}
	h := sha256.New()
	h.Write([]byte(ts))
	h.Write(r.Body)
	digest := h.Sum(nil)
	// Public keys: nothing secret to time, so the first match will do.
	if !slices.ContainsFunc(v.keys, func(k *ecdsa.PublicKey) bool { return ecdsa.VerifyASN1(k, digest, sig) }) {
		return Result{}, unauthorized(ReasonSignatureMismatch)
	}
	if err := checkUnixTime(ts, r.Now, v.window); err != nil {
		return Result{}, err
	}
	return Result{Scheme: "sendgrid"}, nil
}

// signSendGrid signs as SendGrid does, for send-test; its secret must be
// the ECDSA P-256 private key (SEC 1 or PKCS #8, PEM or base64 DER)
// matching the verification key the inbox verifies with.
func signSendGrid(c Config, body []byte, _ *url.URL, now time.Time) (http.Header, error) {
	errKey := errors.New("sendgrid verifies with SendGrid's public key, which cannot sign; to sign a test event, give the matching ECDSA P-256 private key (PEM or base64 DER) as the secret")
	der, ok := keyBytes(c.Secrets[0])
	if !ok {
		return nil, errKey
	}
	key, err := x509.ParseECPrivateKey(der)
	if err != nil {
		k, err2 := x509.ParsePKCS8PrivateKey(der)
		var isEC bool
		key, isEC = k.(*ecdsa.PrivateKey)
		if err2 != nil || !isEC {
			return nil, errKey
		}
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	digest := sha256.Sum256(append([]byte(ts), body...))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		return nil, fmt.Errorf("signing: %v", err)
	}
	h := http.Header{}
	h.Set("X-Twilio-Email-Event-Webhook-Signature", base64.StdEncoding.EncodeToString(sig))
	h.Set("X-Twilio-Email-Event-Webhook-Timestamp", ts)
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "SendGrid Event API")
	return h, nil
}

func sendgridSample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `[{"email":"recipient@example.com","timestamp":%d,"event":"delivered","sg_event_id":%q,"sg_message_id":"hookinbox-test.filter0001.16648.5515E0B88.0","smtp-id":"<hookinbox-test@example.com>","response":"250 OK","category":["hookinbox"]}]`,
		now.Unix(), strings.ReplaceAll(id, "-", ""))
}
