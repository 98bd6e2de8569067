package verify

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"time"
)

// twilioVerifier checks X-Twilio-Signature: the base64 HMAC-SHA1, under
// the account's auth token, of the full URL Twilio called followed by each
// POST form parameter, sorted by name, as name and value with nothing in
// between. For a JSON body, Twilio adds a bodySHA256 query parameter (the
// hex SHA-256 of the body) to the URL it signs, and signs the URL alone.
// Twilio is inconsistent about the port in the URL, so, as its own
// libraries do, the URL is tried with and without it. The event id is
// I-Twilio-Idempotency-Token.
type twilioVerifier struct {
	keys [][]byte
	url  string
}

func newTwilio(c Config) (Verifier, error) {
	if err := only(c, "url"); err != nil {
		return nil, err
	}
	return &twilioVerifier{keys: secretBytes(c.Secrets), url: c.URL}, nil
}

func (v *twilioVerifier) Verify(r *Request) (Result, error) {
	header := r.Header.Get("X-Twilio-Signature")
	if header == "" {
		return Result{}, unauthorized(ReasonSignatureMissing)
	}
	sig, err := base64.StdEncoding.DecodeString(header)
	if err != nil || len(sig) != sha1.Size {
		return Result{}, malformed(ReasonSignatureMalformed)
	}
	signed := signedURL(v.url, r.URL)
	u, err := url.Parse(signed)
	if err != nil {
		return Result{}, unauthorized(ReasonSignatureMismatch)
	}
	var params []byte
	if bodyHash := u.Query().Get("bodySHA256"); bodyHash != "" {
		sum := sha256.Sum256(r.Body)
		if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(bodyHash)) != 1 {
			return Result{}, unauthorized(ReasonSignatureMismatch)
		}
	} else {
		form, err := url.ParseQuery(string(r.Body))
		if err != nil {
			return Result{}, unauthorized(ReasonSignatureMismatch)
		}
		params = twilioParams(form)
	}
	match := false
	for _, variant := range portVariants(u) {
		if anyKey(v.keys, sig, func(k []byte) []byte { return mac(sha1.New, k, []byte(variant), params) }) {
			match = true
		}
	}
	if !match {
		return Result{}, unauthorized(ReasonSignatureMismatch)
	}
	return Result{Scheme: "twilio", EventID: KeyFromHeader(r.Header, "I-Twilio-Idempotency-Token")}, nil
}

// twilioParams concatenates form parameters the way Twilio signs them:
// sorted by name, each value of a repeated name in sorted order.
func twilioParams(form url.Values) []byte {
	names := make([]string, 0, len(form))
	for name := range form {
		names = append(names, name)
	}
	sort.Strings(names)
	var b []byte
	for _, name := range names {
		values := append([]string(nil), form[name]...)
		sort.Strings(values)
		for _, value := range values {
			b = append(b, name...)
			b = append(b, value...)
		}
	}
	return b
}

// portVariants are u as given, without its port and with the scheme's
// default port.
func portVariants(u *url.URL) []string {
	variants := []string{u.String()}
	host, port := u.Hostname(), u.Port()
	without := *u
	without.Host = bracketed(host)
	with := *u
	switch {
	case port != "":
		variants = append(variants, without.String())
	case u.Scheme == "https":
		with.Host = net.JoinHostPort(host, "443")
		variants = append(variants, with.String())
	default:
		with.Host = net.JoinHostPort(host, "80")
		variants = append(variants, with.String())
	}
	return variants
}

func bracketed(host string) string {
	if net.ParseIP(host) != nil && net.ParseIP(host).To4() == nil {
		return "[" + host + "]"
	}
	return host
}

func (v *twilioVerifier) sign(body []byte, target *url.URL, _ time.Time) (http.Header, error) {
	h := http.Header{}
	var params []byte
	if json.Valid(body) {
		sum := sha256.Sum256(body)
		q := target.Query()
		q.Set("bodySHA256", hex.EncodeToString(sum[:]))
		target.RawQuery = q.Encode()
		h.Set("Content-Type", "application/json")
	} else {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("twilio signs form bodies or JSON bodies: %v", err)
		}
		params = twilioParams(form)
		h.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	signed := signedURL(v.url, target)
	h.Set("X-Twilio-Signature", base64.StdEncoding.EncodeToString(mac(sha1.New, v.keys[0], []byte(signed), params)))
	h.Set("I-Twilio-Idempotency-Token", newID())
	h.Set("User-Agent", "TwilioProxy/1.1")
	return h, nil
}

func twilioSample(id string, now time.Time) []byte {
	v := url.Values{
		"MessageSid":  {"SM" + hexID(id)},
		"SmsSid":      {"SM" + hexID(id)},
		"AccountSid":  {"AC00000000000000000000000000000000"},
		"From":        {"+14158675309"},
		"To":          {"+18005551212"},
		"Body":        {"Hello from hookinbox at " + now.UTC().Format(time.RFC3339)},
		"NumMedia":    {"0"},
		"SmsStatus":   {"received"},
		"ApiVersion":  {"2010-04-01"},
		"NumSegments": {"1"},
	}
	return []byte(v.Encode())
}

// hexID turns a UUID into the 32 hex digits of a Twilio SID.
func hexID(id string) string {
	b := make([]byte, 0, 32)
	for i := 0; i < len(id); i++ {
		if id[i] != '-' {
			b = append(b, id[i])
		}
	}
	return string(b)
}
