package verify

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// signer is implemented by the verifiers that can also sign, the way
// their sender would, with the first configured secret.
type signer interface {
	sign(body []byte, target *url.URL, now time.Time) (http.Header, error)
}

// Sign returns the headers a real sender would add to a request carrying
// body to target at now, signed with c's first secret, so that a
// verifier built from c accepts it. It is what `caddy hookinbox
// send-test` sends.
//
// Some senders put part of their signature in the URL (a token in the
// query, Mercado Pago's data.id): Sign adds those to target's query, so
// send the request to target as it is after the call.
//
// The discord and sendgrid schemes verify with the sender's public key,
// which cannot sign. For them, the first secret must instead be the
// matching private key (discord: the 64-byte Ed25519 private key in hex;
// sendgrid: a PKCS #8 ECDSA P-256 key, PEM or base64 DER); verify the
// result with the public key.
func Sign(c Config, body []byte, target *url.URL, now time.Time) (http.Header, error) {
	s, ok := lookupScheme(c.Scheme)
	if !ok {
		return nil, fmt.Errorf("unknown verify scheme %q", c.Scheme)
	}
	if target == nil {
		return nil, errors.New("signing needs the target URL")
	}
	if s.sign != nil {
		if err := checkSecrets(c); err != nil {
			return nil, fmt.Errorf("signing for %s: %w", c.Scheme, err)
		}
		return s.sign(c, body, target, now)
	}
	v, err := New(c)
	if err != nil {
		return nil, err
	}
	sg, ok := v.(signer)
	if !ok {
		return nil, fmt.Errorf("scheme %s cannot sign", c.Scheme)
	}
	return sg.sign(body, target, now)
}

// bodySigner is implemented by the verifiers of senders that carry their
// secret in the body: signing them changes the body.
type bodySigner interface {
	signBody(body []byte, target *url.URL, now time.Time) ([]byte, http.Header, error)
}

// SignedSample returns a realistic event of c's scheme (SampleBody), as
// its sender would send it to target at now: the body, with the secret in
// it for the senders that carry it there, and the headers, signed with
// c's first secret (see Sign). It is what `caddy hookinbox send-test`
// sends; send the request to target as it is after the call.
func SignedSample(c Config, target *url.URL, now time.Time) ([]byte, http.Header, error) {
	body := SampleBody(c.Scheme, now)
	s, ok := lookupScheme(c.Scheme)
	if !ok {
		return nil, nil, fmt.Errorf("unknown verify scheme %q", c.Scheme)
	}
	if s.sign == nil {
		v, err := New(c)
		if err != nil {
			return nil, nil, err
		}
		if bs, ok := v.(bodySigner); ok {
			return bs.signBody(body, target, now)
		}
	}
	h, err := Sign(c, body, target, now)
	return body, h, err
}

// SampleBody returns a realistic event body for scheme, as its sender
// would send it, with an event id unique to this call. An unknown
// scheme gets a plain JSON event.
func SampleBody(scheme string, now time.Time) []byte {
	id := newID()
	if s, ok := lookupScheme(scheme); ok && s.sample != nil {
		return s.sample(id, now)
	}
	return genericSample(id, now)
}

// genericSample is a neutral JSON event, for schemes whose payload is the
// user's own (token, hmac).
func genericSample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"id":"evt_%s","type":"hookinbox.test","created_at":%q,"data":{"message":"Hello from hookinbox"}}`,
		id, now.UTC().Format(time.RFC3339))
}
