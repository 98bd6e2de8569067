package caddymodule

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/hookinbox/hookinbox/internal/verify"
)

// VerifyConfig is one way an inbox checks that a request comes from its
// sender: one `verify` line of the handler. A request passes if any one
// of the inbox's verify entries passes.
type VerifyConfig struct {
	// Scheme names how the sender proves itself: a sender (asaas,
	// bitbucket, calendly, discord, github, gitlab, hotmart, hubla,
	// intercom, linear, mailgun, mercadopago, paddle, pagerduty, sendgrid,
	// shopify, slack, square, stripe, twilio, typeform, woocommerce,
	// zendesk, zoom), Standard Webhooks and Svix (standard), a static
	// token (token) or any other HMAC signature (hmac).
	Scheme string `json:"scheme"`

	// Secrets are what the sender shares with you: a static token, a
	// signing secret, or (discord, sendgrid) the sender's public key.
	// Write them as placeholders, {env.NAME} or {file./path}, so that
	// they stay out of the config; they are resolved when the config
	// loads. With several, a request signed with any one passes, which
	// lets you rotate a secret without downtime.
	Secrets []string `json:"secrets,omitempty"`

	// Tolerance is how far the sender's signed timestamp may be from now,
	// in either direction, before the request is rejected as a replay.
	// Default: the scheme's own (5m for the schemes that sign a
	// timestamp). A negative value (Caddyfile: `off`) turns the check off.
	Tolerance caddy.Duration `json:"tolerance,omitempty"`

	// Header is the request header that carries the token (token) or the
	// signature (hmac).
	Header string `json:"header,omitempty"`

	// Query is the query parameter that carries the token (token), for
	// senders that put it in the URL instead of a header.
	Query string `json:"query,omitempty"`

	// Algorithm is the hash of an hmac signature: sha1, sha256 or sha512.
	// Default: sha256.
	Algorithm string `json:"algorithm,omitempty"`

	// Encoding is how an hmac signature is written: hex or base64.
	// Default: hex.
	Encoding string `json:"encoding,omitempty"`

	// Prefix is text that comes before an hmac signature in its header,
	// such as `sha256=`. When set, it must be there.
	Prefix string `json:"prefix,omitempty"`

	// Content is what an hmac signature covers, as a template: {body} is
	// the raw body, {timestamp} the value of timestamp_header, {id} the
	// value of id_header, {url} the URL the sender called and
	// {header.<Name>} any request header; other text is literal ({{ and }}
	// for braces). Default: `{body}`.
	Content string `json:"content,omitempty"`

	// TimestampHeader is the header with the signed Unix timestamp of an
	// hmac signature (seconds, or milliseconds). When set, content must
	// sign it, and requests outside tolerance (default 5m) are rejected.
	TimestampHeader string `json:"timestamp_header,omitempty"`

	// IDHeader is the header with the sender's own event id, for hmac. It
	// becomes the event's dedupe key.
	IDHeader string `json:"id_header,omitempty"`

	// URL is the public URL the sender was given, for the schemes that
	// sign the URL (twilio, square, and hmac with {url}). Set it when
	// requests reach Caddy at another URL, for example behind another
	// proxy or a tunnel. Default: the URL of the request.
	URL string `json:"url,omitempty"`
}

// parseVerify parses one verify line; d is on the `verify` token.
//
//	verify <scheme> [<secret>…] [{
//		secret <secret>…          # more secrets; `value` is the same, for token
//		tolerance <duration>|off
//		header <name>
//		query <name>
//		algorithm sha1|sha256|sha512
//		encoding hex|base64
//		prefix <text>
//		content <template>
//		timestamp_header <name>
//		id_header <name>
//		url <public url>
//	}]
//
// For example:
//
//	verify hotmart {env.HOTMART_HOTTOK}
//	verify stripe {env.STRIPE_SECRET} {env.STRIPE_OLD_SECRET} {
//		tolerance 10m
//	}
//	verify token {
//		header X-Token
//		value  {env.TOKEN}
//	}
//	verify hmac {env.SIGNING_SECRET} {
//		header           X-Signature
//		prefix           sha256=
//		content          "{timestamp}.{body}"
//		timestamp_header X-Timestamp
//	}
func parseVerify(d *caddyfile.Dispenser) (VerifyConfig, error) {
	var vc VerifyConfig
	if !d.NextArg() {
		return vc, d.Errf("verify needs a scheme (one of: %v)", verify.Schemes())
	}
	vc.Scheme = d.Val()
	vc.Secrets = append(vc.Secrets, d.RemainingArgs()...)

	for nesting := d.Nesting(); d.NextBlock(nesting); {
		option := d.Val()
		if option == "secret" || option == "value" {
			args := d.RemainingArgs()
			if len(args) == 0 {
				return vc, d.ArgErr()
			}
			vc.Secrets = append(vc.Secrets, args...)
			continue
		}
		if !d.NextArg() {
			return vc, d.ArgErr()
		}
		value := d.Val()
		if d.NextArg() {
			return vc, d.ArgErr()
		}
		var field *string
		switch option {
		case "tolerance":
			if value == "off" {
				vc.Tolerance = caddy.Duration(-1)
				continue
			}
			dur, err := caddy.ParseDuration(value)
			if err != nil || dur <= 0 {
				return vc, d.Errf("tolerance: want a positive duration or off, got %q", value)
			}
			vc.Tolerance = caddy.Duration(dur)
			continue
		case "header":
			field = &vc.Header
		case "query":
			field = &vc.Query
		case "algorithm":
			field = &vc.Algorithm
		case "encoding":
			field = &vc.Encoding
		case "prefix":
			field = &vc.Prefix
		case "content":
			field = &vc.Content
		case "timestamp_header":
			field = &vc.TimestampHeader
		case "id_header":
			field = &vc.IDHeader
		case "url":
			field = &vc.URL
		default:
			return vc, d.Errf("verify %s: unknown option %q", vc.Scheme, option)
		}
		if *field != "" {
			return vc, d.Errf("verify %s: %s given twice", vc.Scheme, option)
		}
		*field = value
	}
	if len(vc.Secrets) == 0 {
		return vc, d.Errf("verify %s: a secret is required", vc.Scheme)
	}
	return vc, nil
}

// config resolves the placeholders in the secrets ({env.NAME},
// {file./path}) with repl and returns the verify package's Config. An
// unknown placeholder or one that resolves to nothing is an error, so a
// missing environment variable cannot leave an inbox open to an empty
// token. Errors name the placeholder, never its value.
func (vc VerifyConfig) config(repl *caddy.Replacer) (verify.Config, error) {
	secrets := make([]string, len(vc.Secrets))
	for i, s := range vc.Secrets {
		v, err := repl.ReplaceOrErr(s, true, true)
		if err != nil {
			return verify.Config{}, fmt.Errorf("secret %d: %v", i+1, err)
		}
		secrets[i] = v
	}
	return verify.Config{
		Scheme:          vc.Scheme,
		Secrets:         secrets,
		Tolerance:       time.Duration(vc.Tolerance),
		Header:          vc.Header,
		Query:           vc.Query,
		Algorithm:       vc.Algorithm,
		Encoding:        vc.Encoding,
		Prefix:          vc.Prefix,
		Content:         vc.Content,
		TimestampHeader: vc.TimestampHeader,
		IDHeader:        vc.IDHeader,
		URL:             vc.URL,
	}, nil
}

// verifier resolves the secrets' placeholders with repl and builds the
// verifier.
func (vc VerifyConfig) verifier(repl *caddy.Replacer) (verify.Verifier, error) {
	c, err := vc.config(repl)
	if err != nil {
		return nil, err
	}
	return verify.New(c)
}
