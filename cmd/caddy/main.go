// Command caddy is Caddy with its standard modules and hookinbox: the same
// binary that `xcaddy build --with github.com/hookinbox/hookinbox/caddymodule`
// makes, so `go run ./cmd/caddy` runs what users run.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/hookinbox/hookinbox/caddymodule"
)

func main() {
	caddycmd.Main()
}
