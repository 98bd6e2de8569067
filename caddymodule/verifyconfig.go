package caddymodule

import (
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/hookinbox/hookinbox/internal/verify"
)

// verifyNamespace is the Caddy module namespace of the ways a sender proves
// itself: one module per scheme, http.handlers.hookinbox.verify.<scheme>,
// written inline in the handler's JSON as {"scheme": "<scheme>", …}, as
// reverse_proxy's transports are. Another plugin adds a scheme by
// registering a module there that implements Verifier.
const verifyNamespace = "http.handlers.hookinbox.verify"

func init() {
	for _, name := range verify.Schemes() {
		caddy.RegisterModule(Scheme{name: name})
	}
}

// The types a verify module works with.
type (
	// VerifyRequest is what a verifier looks at: the method, the URL as
	// the sender called it, the headers, the exact body and the time.
	VerifyRequest = verify.Request
	// VerifyResult is what a request that passed tells the handler: the
	// scheme, the sender's event id (the default dedupe key) and, for an
	// endpoint check, an answer to send at once.
	VerifyResult = verify.Result
	// VerifyRejection is the error of a request that did not pass: a
	// reason code and 401 or 400.
	VerifyRejection = verify.Rejection
)

// Verifier is implemented by the modules of the namespace
// http.handlers.hookinbox.verify. Verify returns a *VerifyRejection as its
// error when the request does not pass. It is called concurrently.
type Verifier interface {
	Verify(r *VerifyRequest) (VerifyResult, error)
}

// SecretKeeper is implemented by the verify modules that hold secrets:
// hookinbox hides their values wherever it shows a stored request (the
// admin API, the command line, the dashboard, the logs).
type SecretKeeper interface {
	SecretValues() []string
}

// Scheme is a built-in verify module: one sender's scheme, named by the
// module's ID (http.handlers.hookinbox.verify.hotmart, …). Its options are
// verify.Config's, the one definition of what each scheme takes; which
// options a scheme accepts is checked when the config loads.
type Scheme struct {
	name string

	verify.Config

	// Tolerance is how far the sender's signed timestamp may be from now,
	// in either direction, before the request is rejected as a replay.
	// Default: the scheme's own (5m for the schemes that sign a
	// timestamp). A negative value (Caddyfile: `off`) turns the check off.
	Tolerance caddy.Duration `json:"tolerance,omitempty"`

	verifier verify.Verifier
	secrets  []string // resolved
}

// CaddyModule returns the Caddy module information.
func (s Scheme) CaddyModule() caddy.ModuleInfo {
	name := s.name
	return caddy.ModuleInfo{
		ID:  caddy.ModuleID(verifyNamespace + "." + name),
		New: func() caddy.Module { return &Scheme{name: name} },
	}
}

// Provision resolves the secrets' placeholders and builds the check. An
// unknown placeholder or one that resolves to nothing is an error, so a
// missing environment variable cannot leave an inbox open to an empty
// token. Errors name the placeholder, never its value.
func (s *Scheme) Provision(ctx caddy.Context) error { return s.build(ctx.Logger()) }

func (s *Scheme) build(logger *zap.Logger) error {
	c, err := s.config(secretReplacer())
	if err != nil {
		return err
	}
	if c.JWKS != "" {
		keys, err := jwksFor(c.JWKS, logger)
		if err != nil {
			return err
		}
		c.Keys = keys
	}
	v, err := verify.New(c)
	if err != nil {
		return err
	}
	s.verifier, s.secrets = v, c.Secrets
	noteSecretPlaces(c)
	return nil
}

// config is the verify package's Config of s, with the secrets resolved
// by repl.
func (s *Scheme) config(repl *caddy.Replacer) (verify.Config, error) {
	c := s.Config
	c.Scheme = s.name
	c.Tolerance = time.Duration(s.Tolerance)
	c.Secrets = make([]string, len(s.Secrets))
	for i, secret := range s.Secrets {
		v, err := repl.ReplaceOrErr(secret, true, true)
		if err != nil {
			return verify.Config{}, fmt.Errorf("secret %d: %v", i+1, err)
		}
		c.Secrets[i] = v
	}
	return c, nil
}

// Verify checks r.
func (s *Scheme) Verify(r *VerifyRequest) (VerifyResult, error) { return s.verifier.Verify(r) }

// SecretValues are the resolved secrets.
func (s *Scheme) SecretValues() []string { return s.secrets }

// UnmarshalCaddyfile reads one verify line, from its scheme on:
//
//	verify <scheme> [<secret>…] [{
//		secret <secret>…          # more secrets; `value` is the same, for token
//		tolerance <duration>|off
//		<option> <value>          # header, query, algorithm, encoding, prefix,
//		                          # content, timestamp_header, id_header, url, jwks
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
//	verify pagarme {
//		jwks https://example.com/.well-known/jwks.json
//	}
func (s *Scheme) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the scheme
	s.Secrets = append(s.Secrets, d.RemainingArgs()...)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		option := d.Val()
		if option == "secret" || option == "value" {
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			s.Secrets = append(s.Secrets, args...)
			continue
		}
		if !d.NextArg() {
			return d.ArgErr()
		}
		value := d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
		if option == "tolerance" {
			if value == "off" {
				s.Tolerance = caddy.Duration(-1)
				continue
			}
			dur, err := caddy.ParseDuration(value)
			if err != nil || dur <= 0 {
				return d.Errf("tolerance: want a positive duration or off, got %q", value)
			}
			s.Tolerance = caddy.Duration(dur)
			continue
		}
		if err := s.SetOption(option, value); err != nil {
			return d.Errf("verify %s: %v", s.name, err)
		}
	}
	if len(s.Secrets) == 0 && !verify.Keyed(s.name) {
		return d.Errf("verify %s: a secret is required", s.name)
	}
	return nil
}

// parseVerify parses one verify line of the handler into the JSON of its
// module; d is on the `verify` token.
func parseVerify(d *caddyfile.Dispenser) ([]byte, error) {
	if !d.NextArg() {
		return nil, d.Errf("verify needs a scheme (one of: %s)", strings.Join(schemeNames(), ", "))
	}
	name := d.Val()
	if _, err := caddy.GetModule(verifyNamespace + "." + name); err != nil {
		return nil, d.Errf("unknown verify scheme %q (known: %s)", name, strings.Join(schemeNames(), ", "))
	}
	unm, err := caddyfile.UnmarshalModule(d, verifyNamespace+"."+name)
	if err != nil {
		return nil, err
	}
	return caddyconfig.JSONModuleObject(unm, "scheme", name, nil), nil
}

// schemeNames lists the schemes `verify` takes: the built-in ones and any
// that another plugin registered, sorted.
func schemeNames() []string {
	mods := caddy.GetModules(verifyNamespace)
	names := make([]string, len(mods))
	for i, m := range mods {
		names[i] = m.ID.Name()
	}
	return names
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Scheme)(nil)
	_ caddyfile.Unmarshaler = (*Scheme)(nil)
	_ Verifier              = (*Scheme)(nil)
	_ SecretKeeper          = (*Scheme)(nil)
)
