// Package webhooktest holds what the benchmarks of several packages send:
// the headers a signed webhook typically arrives with.
package webhooktest

import "net/http"

// Header returns, as the server keeps them, the headers a signed webhook
// typically arrives with through a proxy: eleven, some that delivery leaves
// out (hop-by-hop, Content-Length, Accept-Encoding) and some that it keeps.
func Header() http.Header {
	return http.Header{
		"Accept":            {"*/*; q=0.5, application/xml"},
		"Accept-Encoding":   {"gzip"},
		"Cache-Control":     {"no-cache"},
		"Connection":        {"close"},
		"Content-Length":    {"1024"},
		"Content-Type":      {"application/json; charset=utf-8"},
		"Stripe-Signature":  {"t=1700000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"},
		"User-Agent":        {"Stripe/1.0 (+https://stripe.com/docs/webhooks)"},
		"X-Forwarded-For":   {"203.0.113.9"},
		"X-Forwarded-Host":  {"hooks.example.com"},
		"X-Forwarded-Proto": {"https"},
	}
}
