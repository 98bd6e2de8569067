package caddymodule

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("hookinbox", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("hookinbox", parseHandlerDirective)
	// A webhook inbox answers for itself: it goes before the handlers that
	// would otherwise answer or proxy the same path.
	httpcaddyfile.RegisterDirectiveOrder("hookinbox", httpcaddyfile.Before, "reverse_proxy")
}

// parseGlobalOption sets up the hookinbox app from the global options:
//
//	hookinbox {
//		storage   <dir>                  # shorthand for: store badger <dir>
//		store     <module> [<args…>] [{ … }]
//		retention <duration>
//	}
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	d.Next() // the option's name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "storage":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			app.Storage = d.Val()
		case "store":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			name := d.Val()
			unm, err := caddyfile.UnmarshalModule(d, "hookinbox.stores."+name)
			if err != nil {
				return nil, err
			}
			app.StoreRaw = caddyconfig.JSONModuleObject(unm, "module", name, nil)
			continue
		case "retention":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil {
				return nil, d.Errf("retention: %v", err)
			}
			app.Retention = caddy.Duration(dur)
		default:
			return nil, d.Errf("unknown hookinbox option %q", d.Val())
		}
		if d.NextArg() {
			return nil, d.ArgErr()
		}
	}
	return httpcaddyfile.App{Name: "hookinbox", Value: caddyconfig.JSON(app, nil)}, nil
}

func parseHandlerDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(Handler)
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return handler, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	hookinbox [<matcher>] <inbox> {
//		verify <scheme> [<args…>] [{ … }]
//		forward <url>
//		forward_method <method>
//		timeout <duration>
//		retry <d1> <d2> …
//		success <codes…>
//		concurrency <n>
//		ordered
//		max_body <size>
//		methods <m…>
//		respond <status> [<body>]
//		dedupe <duration>|off
//		dedupe_key header <name> | json <field>
//		max_pending <n>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive's name
	if !d.NextArg() {
		return d.Errf("hookinbox needs an inbox name")
	}
	h.Inbox = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "verify":
			var raw []byte
			raw, err = parseVerify(d)
			h.VerifyRaw = append(h.VerifyRaw, raw)
		case "forward":
			h.Forward, err = oneArg(d)
		case "forward_method":
			var m string
			m, err = oneArg(d)
			h.ForwardMethod = strings.ToUpper(m)
		case "timeout":
			var dur caddy.Duration
			dur, err = durationArg(d)
			h.Timeout = dur
		case "retry":
			for d.NextArg() {
				dur, err := caddy.ParseDuration(d.Val())
				if err != nil {
					return d.Errf("retry: %v", err)
				}
				h.Retry = append(h.Retry, caddy.Duration(dur))
			}
			if len(h.Retry) == 0 {
				return d.ArgErr()
			}
		case "success":
			for d.NextArg() {
				code, err := strconv.Atoi(d.Val())
				if err != nil || code < 100 || code > 599 {
					return d.Errf("success: %q is not an HTTP status code", d.Val())
				}
				h.Success = append(h.Success, code)
			}
			if len(h.Success) == 0 {
				return d.ArgErr()
			}
		case "concurrency":
			h.Concurrency, err = positiveIntArg(d)
		case "ordered":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.Ordered = true
		case "max_body":
			var s string
			if s, err = oneArg(d); err == nil {
				size, perr := humanize.ParseBytes(s)
				if perr != nil || size == 0 {
					return d.Errf("max_body: %q is not a size", s)
				}
				h.MaxBody = int64(size)
			}
		case "methods":
			h.Methods = d.RemainingArgs()
			if len(h.Methods) == 0 {
				return d.ArgErr()
			}
		case "respond":
			err = h.parseRespond(d)
		case "dedupe":
			var s string
			if s, err = oneArg(d); err == nil {
				if s == "off" {
					h.DisableDedupe = true
				} else {
					dur, perr := caddy.ParseDuration(s)
					if perr != nil || dur <= 0 {
						return d.Errf("dedupe: %q is neither a duration nor off", s)
					}
					h.Dedupe = caddy.Duration(dur)
				}
			}
		case "dedupe_key":
			err = h.parseDedupeKey(d)
		case "max_pending":
			h.MaxPending, err = positiveIntArg(d)
		default:
			return d.Errf("unknown hookinbox option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (h *Handler) parseRespond(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) < 1 || len(args) > 2 {
		return d.ArgErr()
	}
	status, err := strconv.Atoi(args[0])
	if err != nil || status < 200 || status > 299 {
		return d.Errf("respond: the status of an accepted event must be a 2xx code, got %q", args[0])
	}
	h.Respond = &Respond{Status: status}
	if len(args) == 2 {
		h.Respond.Body = args[1]
	}
	return nil
}

func (h *Handler) parseDedupeKey(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return d.ArgErr()
	}
	switch args[0] {
	case "header":
		h.DedupeKey = &DedupeKey{Header: args[1]}
	case "json":
		h.DedupeKey = &DedupeKey{JSON: args[1]}
	default:
		return d.Errf("dedupe_key: expected header or json, got %q", args[0])
	}
	return nil
}

func oneArg(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	return v, nil
}

func durationArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	s, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil || dur <= 0 {
		return 0, d.Errf("%q is not a positive duration", s)
	}
	return caddy.Duration(dur), nil
}

func positiveIntArg(d *caddyfile.Dispenser) (int, error) {
	s, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, d.Errf("%q is not a positive whole number", s)
	}
	return n, nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
