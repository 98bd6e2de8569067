package caddymodule

import (
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// TestCaddyfileAdapts checks that every option of the global hookinbox
// block and of the handler directive adapts to its JSON field, and that
// secrets stay placeholders in the JSON (so /config never shows them).
func TestCaddyfileAdapts(t *testing.T) {
	caddytest.AssertAdapt(t, `{
	hookinbox {
		storage /var/lib/hookinbox
		retention 48h
	}
}

:8080 {
	route /hooks/shop {
		hookinbox shop {
			verify shopify {env.SHOPIFY_SECRET}
			verify token {
				header X-Token
				value {env.SHOP_TOKEN}
			}
			forward http://127.0.0.1:3000/shop
			forward_method PUT
			timeout 10s
			retry 1m 10m
			success 200 202
			concurrency 8
			ordered
			max_body 256KiB
			methods POST PUT
			respond 202 "queued {http.hookinbox.event_id}"
			dedupe 24h
			dedupe_key json data.id
			max_pending 10000
		}
	}
}
`, "caddyfile", `{
	"apps": {
		"hookinbox": {
			"storage": "/var/lib/hookinbox",
			"retention": 172800000000000
		},
		"http": {
			"servers": {
				"srv0": {
					"listen": [
						":8080"
					],
					"routes": [
						{
							"match": [
								{
									"path": [
										"/hooks/shop"
									]
								}
							],
							"handle": [
								{
									"handler": "subroute",
									"routes": [
										{
											"handle": [
												{
													"concurrency": 8,
													"dedupe": 86400000000000,
													"dedupe_key": {
														"json": "data.id"
													},
													"forward": "http://127.0.0.1:3000/shop",
													"forward_method": "PUT",
													"handler": "hookinbox",
													"inbox": "shop",
													"max_body": 262144,
													"max_pending": 10000,
													"methods": [
														"POST",
														"PUT"
													],
													"ordered": true,
													"respond": {
														"body": "queued {http.hookinbox.event_id}",
														"status": 202
													},
													"retry": [
														60000000000,
														600000000000
													],
													"success": [
														200,
														202
													],
													"timeout": 10000000000,
													"verify": [
														{
															"scheme": "shopify",
															"secrets": [
																"{env.SHOPIFY_SECRET}"
															]
														},
														{
															"header": "X-Token",
															"scheme": "token",
															"secrets": [
																"{env.SHOP_TOKEN}"
															]
														}
													]
												}
											]
										}
									]
								}
							]
						}
					]
				}
			}
		}
	}
}`)
}

func TestCaddyfileErrors(t *testing.T) {
	tests := []struct{ name, block string }{
		{"no inbox name", "hookinbox {\n}"},
		{"unknown option", "hookinbox in {\nforwardd http://x\n}"},
		{"dedupe neither duration nor off", "hookinbox in {\ndedupe sometimes\n}"},
		{"success not a status", "hookinbox in {\nsuccess 999\n}"},
		{"respond with a failure status", "hookinbox in {\nrespond 500\n}"},
		{"max_body not a size", "hookinbox in {\nmax_body lots\n}"},
		{"concurrency zero", "hookinbox in {\nconcurrency 0\n}"},
		{"dedupe_key from nowhere", "hookinbox in {\ndedupe_key cookie id\n}"},
		{"ordered with an argument", "hookinbox in {\nordered yes\n}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.block)); err == nil {
				t.Errorf("parsed %q without an error", tt.block)
			}
		})
	}
}

// The store option names a hookinbox.stores module; storage stays the
// shorthand for the badger one.
func TestCaddyfileStoreAdapts(t *testing.T) {
	caddytest.AssertAdapt(t, `{
	hookinbox {
		store badger /var/lib/hookinbox
	}
}
`, "caddyfile", `{
	"apps": {
		"hookinbox": {
			"store": {
				"dir": "/var/lib/hookinbox",
				"module": "badger"
			}
		}
	}
}`)
}

func TestGlobalOptionErrors(t *testing.T) {
	for _, block := range []string{
		"hookinbox {\nstore\n}",
		"hookinbox {\nstore no_such_store\n}",
		"hookinbox {\nstore badger /a /b\n}",
		"hookinbox {\nstore badger /a {\nsync always\n}\n}",
	} {
		if _, err := parseGlobalOption(caddyfile.NewTestDispenser(block), nil); err == nil {
			t.Errorf("parsed %q without an error", block)
		}
	}
}

func TestCaddyfileNATSStoreAdapts(t *testing.T) {
	caddytest.AssertAdapt(t, `{
	hookinbox {
		store nats {
			servers nats://10.0.0.1:4222 nats://10.0.0.2:4222
			user hookinbox
			password {env.NATS_PASSWORD}
			tls {
				ca /etc/nats/ca.pem
			}
			replicas 3
			prefix shop
		}
	}
}
`, "caddyfile", `{
	"apps": {
		"hookinbox": {
			"store": {
				"module": "nats",
				"password": "{env.NATS_PASSWORD}",
				"prefix": "shop",
				"replicas": 3,
				"servers": [
					"nats://10.0.0.1:4222",
					"nats://10.0.0.2:4222"
				],
				"tls": {
					"ca": "/etc/nats/ca.pem"
				},
				"user": "hookinbox"
			}
		}
	}
}`)
	for _, block := range []string{
		"hookinbox {\nstore nats extra\n}",
		"hookinbox {\nstore nats {\nreplicas zero\n}\n}",
		"hookinbox {\nstore nats {\nservers\n}\n}",
		"hookinbox {\nstore nats {\nsync always\n}\n}",
		"hookinbox {\nstore nats {\nembedded {\nlisten\n}\n}\n}",
		"hookinbox {\nstore nats {\nembedded {\njetstream on\n}\n}\n}",
	} {
		if _, err := parseGlobalOption(caddyfile.NewTestDispenser(block), nil); err == nil {
			t.Errorf("parsed %q without an error", block)
		}
	}
}

func TestCaddyfileEmbeddedNATSAdapts(t *testing.T) {
	caddytest.AssertAdapt(t, `{
	hookinbox {
		store nats {
			embedded {
				listen 127.0.0.1:4222
				cluster 10.0.0.1:6222
				routes nats-route://10.0.0.2:6222 nats-route://10.0.0.3:6222
				name node1
				storage /var/lib/hookinbox-nats
			}
		}
	}
}
`, "caddyfile", `{
	"apps": {
		"hookinbox": {
			"store": {
				"embedded": {
					"cluster": "10.0.0.1:6222",
					"listen": "127.0.0.1:4222",
					"name": "node1",
					"routes": [
						"nats-route://10.0.0.2:6222",
						"nats-route://10.0.0.3:6222"
					],
					"storage": "/var/lib/hookinbox-nats"
				},
				"module": "nats"
			}
		}
	}
}`)
}
