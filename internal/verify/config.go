package verify

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Config describes one way an inbox checks its sender: one `verify` line
// of the handler. It is the one definition of a scheme's options: the Caddy
// module of each scheme (http.handlers.hookinbox.verify.<scheme>) decodes its
// JSON into it, the Caddyfile and `send-test --option` set its options by
// name through SetOption, and the docs list them from Options. Only Scheme
// and Secrets are needed for most schemes; the other fields serve the
// schemes named in their comments.
type Config struct {
	// Scheme names the sender's verification scheme; see Schemes. In JSON
	// it is the module's inline key, "scheme".
	Scheme string `json:"-"`

	// Secrets are what the sender shares with you: a static token, a
	// signing secret, or (discord, sendgrid) the sender's public key.
	// Write them as placeholders, {env.NAME} or {file./path}, so that
	// they stay out of the config; they are resolved when the config
	// loads. With several, a request signed with any one passes, which
	// lets you rotate a secret without downtime. pagarme takes none: it
	// verifies with Pagar.me's published keys.
	Secrets []string `json:"secrets,omitempty"`

	// Tolerance is how far a signed timestamp may be from now, in either
	// direction, before the request is rejected as a replay. Zero means
	// the scheme's default (5m for the schemes that sign a timestamp);
	// a negative value (Caddyfile: `off`) turns the check off. In JSON it
	// is a Caddy duration, on the module.
	Tolerance time.Duration `json:"-"`

	// Header is the request header that carries the token (token) or the
	// signature (hmac).
	Header string `json:"header,omitempty"`

	// Query is the query parameter that carries the token (token), for
	// senders that put it in the URL instead of a header.
	Query string `json:"query,omitempty"`

	// Algorithm is the hash of an hmac signature: sha1, sha256 (default)
	// or sha512.
	Algorithm string `json:"algorithm,omitempty"`

	// Encoding is how an hmac signature is written: hex (default) or
	// base64.
	Encoding string `json:"encoding,omitempty"`

	// Prefix is text before an hmac signature in its header, such as
	// "sha256=". When set, it must be there.
	Prefix string `json:"prefix,omitempty"`

	// Content is what an hmac signature covers, as a template: {body} is
	// the raw body, {timestamp} the value of timestamp_header, {id} the
	// value of id_header, {url} the URL the sender called and
	// {header.<Name>} any request header; other text is literal ({{ and }}
	// for braces). Default: "{body}".
	Content string `json:"content,omitempty"`

	// TimestampHeader is the header with the signed Unix timestamp of an
	// hmac signature (seconds, or milliseconds when it has 13 digits or
	// more). When set, content must sign it, and requests outside
	// tolerance (default 5m) are rejected.
	TimestampHeader string `json:"timestamp_header,omitempty"`

	// IDHeader is the header with the sender's own event id, for hmac. It
	// becomes the event's dedupe key.
	IDHeader string `json:"id_header,omitempty"`

	// URL is the public URL the sender was given, for the schemes that
	// sign it (twilio, square, mercadopago, and hmac with {url}). Set it
	// when requests reach Caddy at another URL, for example behind another
	// proxy or a tunnel. Default: the URL of the request.
	URL string `json:"url,omitempty"`

	// JWKS is the URL of the JSON Web Key Set that holds the sender's
	// public keys, for pagarme. It is fetched when the config loads, cached,
	// and fetched again when a request names a key it does not hold (at
	// most once a minute).
	JWKS string `json:"jwks,omitempty"`

	// Keys finds the sender's public key by its id, for pagarme. The caller
	// provides it (hookinbox's Caddy module fetches and caches the JWKS);
	// the check itself stays a pure function of the request and the key.
	Keys KeySet `json:"-"`
}

// option is one of Config's scheme-specific string options, by the name it
// has in the Caddyfile, the JSON and send-test's --option.
type option struct {
	name  string
	field func(c *Config) *string
}

// options is every scheme-specific option, in the order the docs list them.
var options = []option{
	{"header", func(c *Config) *string { return &c.Header }},
	{"query", func(c *Config) *string { return &c.Query }},
	{"algorithm", func(c *Config) *string { return &c.Algorithm }},
	{"encoding", func(c *Config) *string { return &c.Encoding }},
	{"prefix", func(c *Config) *string { return &c.Prefix }},
	{"content", func(c *Config) *string { return &c.Content }},
	{"timestamp_header", func(c *Config) *string { return &c.TimestampHeader }},
	{"id_header", func(c *Config) *string { return &c.IDHeader }},
	{"url", func(c *Config) *string { return &c.URL }},
	{"jwks", func(c *Config) *string { return &c.JWKS }},
}

// Options lists the names of the scheme-specific options, as SetOption
// takes them.
func Options() []string {
	names := make([]string, len(options))
	for i, o := range options {
		names[i] = o.name
	}
	return names
}

// SetOption sets the option called name (see Options) to value. It is how
// the Caddyfile and send-test fill a Config.
func (c *Config) SetOption(name, value string) error {
	for _, o := range options {
		if o.name != name {
			continue
		}
		f := o.field(c)
		if *f != "" {
			return fmt.Errorf("%s given twice", name)
		}
		*f = value
		return nil
	}
	return fmt.Errorf("unknown option %q (known: %s)", name, strings.Join(Options(), ", "))
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
	if !s.keyed {
		if err := checkSecrets(c); err != nil {
			return nil, fmt.Errorf("verify %s: %w", c.Scheme, err)
		}
	} else if len(c.Secrets) > 0 {
		return nil, fmt.Errorf("verify %s: takes no secret; it verifies with the sender's published keys", c.Scheme)
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
	for _, o := range options {
		if contains(names, o.name) && *o.field(&c) != "" {
			return fmt.Errorf("option %s does not apply to this scheme", o.name)
		}
	}
	return nil
}

// only rejects every option but the allowed ones.
func only(c Config, allowed ...string) error {
	var rest []string
	for _, o := range options {
		if !contains(allowed, o.name) {
			rest = append(rest, o.name)
		}
	}
	return needNo(c, rest...)
}

// allOptions is every scheme-specific option, for schemes that take
// nothing but secrets and a tolerance.
var allOptions = Options()
