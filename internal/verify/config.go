package verify

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Config describes one way an inbox checks its sender. Only Scheme and
// Secrets are needed for most schemes; the other fields serve the
// schemes named in their comments.
type Config struct {
	// Scheme names the sender's verification scheme; see Schemes.
	Scheme string

	// Secrets are what the sender shares with you: a static token, a
	// signing secret, or (discord, sendgrid) the sender's public key.
	// When there are several, a request signed with any one of them
	// passes, which lets you rotate a secret without downtime.
	Secrets []string

	// Tolerance is how far a signed timestamp may be from now, in either
	// direction, before the request is rejected as a replay. Zero means
	// the scheme's default (5m for the schemes that sign a timestamp);
	// a negative value turns the check off.
	Tolerance time.Duration

	// Header is the header that carries the token (token) or the
	// signature (hmac).
	Header string

	// Query is the query parameter that carries the token (token), as an
	// alternative to Header.
	Query string

	// Algorithm is the hash of an hmac signature: sha1, sha256 (default)
	// or sha512.
	Algorithm string

	// Encoding is how an hmac signature is written: hex (default) or
	// base64.
	Encoding string

	// Prefix is text before an hmac signature in its header, such as
	// "sha256=". When set, it must be there.
	Prefix string

	// Content is what an hmac signature covers, as a template. {body} is
	// the raw body, {timestamp} the value of TimestampHeader, {id} the
	// value of IDHeader and {header.<Name>} any request header. Default:
	// "{body}".
	Content string

	// TimestampHeader is the header with the signed Unix timestamp
	// (seconds, or milliseconds when it has 13 digits or more) for hmac.
	// When set, requests outside Tolerance (default 5m) are rejected.
	TimestampHeader string

	// IDHeader is the header with the sender's event id for hmac; it
	// becomes the event's dedupe key.
	IDHeader string

	// URL is the public URL the sender was given, for the schemes that
	// sign it (twilio, square, mercadopago, and hmac with {url}). Set it
	// when the URL the request arrives at differs from it, for instance
	// behind another proxy or tunnel; by default the request's own URL is
	// used, so Request.URL must then be absolute.
	URL string
}

// Schemes lists the names Config.Scheme accepts, sorted.
func Schemes() []string { return schemeNames() }

// New checks c and returns a verifier for it. Its errors name the field
// that is wrong and never contain a secret.
func New(c Config) (Verifier, error) {
	s, ok := lookupScheme(c.Scheme)
	if !ok {
		return nil, fmt.Errorf("unknown verify scheme %q (known: %s)", c.Scheme, strings.Join(schemeNames(), ", "))
	}
	if err := checkSecrets(c); err != nil {
		return nil, fmt.Errorf("verify %s: %w", c.Scheme, err)
	}
	if c.Tolerance > 0 && (s.signsTime == nil || !s.signsTime(c)) {
		return nil, fmt.Errorf("verify %s: the sender signs no timestamp, so tolerance does not apply", c.Scheme)
	}
	v, err := s.build(c)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", c.Scheme, err)
	}
	return v, nil
}

func checkSecrets(c Config) error {
	if len(c.Secrets) == 0 {
		return errors.New("a secret is required")
	}
	for i, s := range c.Secrets {
		if strings.TrimSpace(s) == "" {
			// A placeholder that resolved to nothing ({env.UNSET}) lands
			// here; accepting it would let an empty token through.
			return fmt.Errorf("secret %d is empty (is its placeholder set?)", i+1)
		}
	}
	return nil
}

// window is the replay window in effect: the scheme's default when c
// gives none, and zero (no check) when c turns it off.
func window(c Config, def time.Duration) time.Duration {
	switch {
	case c.Tolerance < 0:
		return 0
	case c.Tolerance == 0:
		return def
	default:
		return c.Tolerance
	}
}

// needNo rejects options that the scheme would silently ignore, so a
// typo'd configuration fails at load instead of at the first request.
func needNo(c Config, names ...string) error {
	set := map[string]bool{
		"header":           c.Header != "",
		"query":            c.Query != "",
		"algorithm":        c.Algorithm != "",
		"encoding":         c.Encoding != "",
		"prefix":           c.Prefix != "",
		"content":          c.Content != "",
		"timestamp_header": c.TimestampHeader != "",
		"id_header":        c.IDHeader != "",
		"url":              c.URL != "",
	}
	for _, n := range names {
		if set[n] {
			return fmt.Errorf("option %s does not apply to this scheme", n)
		}
	}
	return nil
}

// allOptions is every scheme-specific option, for schemes that take
// nothing but secrets and a tolerance.
var allOptions = []string{"header", "query", "algorithm", "encoding", "prefix", "content", "timestamp_header", "id_header", "url"}
