package caddymodule

import (
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// secretReplacer resolves the placeholders a secret is written with when
// the config loads: Caddy's global ones ({env.NAME}, {file./path}) plus
// {env.NAME:default}, which falls back to default when NAME is unset or
// empty. Secrets are resolved here, never in the JSON config, so they stay
// out of the admin API's /config.
func secretReplacer() *caddy.Replacer {
	global := caddy.NewReplacer()
	repl := caddy.NewEmptyReplacer()
	repl.Map(func(key string) (any, bool) {
		if name, fallback, ok := strings.Cut(key, ":"); ok && strings.HasPrefix(name, "env.") {
			if v, _ := global.Get(name); v != nil && v != "" {
				return v, true
			}
			return fallback, true
		}
		return global.Get(key)
	})
	return repl
}
