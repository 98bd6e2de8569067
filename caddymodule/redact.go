package caddymodule

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/hookinbox/hookinbox/internal/verify"
)

// redacted replaces a secret wherever hookinbox shows a stored request:
// the admin API, the command line, the logs. The stored event itself keeps
// the secret, because the app may check it again on delivery.
const redacted = "[redacted]"

// secretHeaders are the request headers that carry a static secret, as
// senders and HTTP use them. Signature headers are not here: a signature
// is worthless without the body it signs and the secret it was made with.
var secretHeaders = []string{
	"X-Hotmart-Hottok",
	"X-Hubla-Token",
	"X-Gitlab-Token",
	"Asaas-Access-Token",
	"Authorization",
	"Proxy-Authorization",
	"Cookie",
}

// alwaysSecretBodyFields are body fields that carry a static secret
// whichever scheme verified the event: names no sender uses for anything
// else (Hotmart's v1 hottok, Monetizze's chave_unica). The schemes add their
// own (verify.BodySecrets: Perfect Pay's token, Cakto's secret).
var alwaysSecretBodyFields = []string{"hottok", "chave_unica"}

// secretPlaces are the header and query parameter names that configured
// token verifiers read their secret from. They are remembered for the whole
// process: a name once configured stays redacted after a reload removes it,
// since events stored under that config are still in history. Redacting too
// much is harmless; too little is not.
var secretPlaces = struct {
	sync.RWMutex
	headers map[string]bool // canonical header names
	query   map[string]bool
}{headers: map[string]bool{}, query: map[string]bool{}}

// noteSecretPlaces records where the verifier configured by c finds a static
// secret in a request, so that it is redacted wherever stored requests are
// shown. The handler calls it for each of its verifiers.
func noteSecretPlaces(c verify.Config) {
	if c.Scheme != "token" {
		return
	}
	secretPlaces.Lock()
	defer secretPlaces.Unlock()
	if c.Header != "" {
		secretPlaces.headers[http.CanonicalHeaderKey(c.Header)] = true
	}
	if c.Query != "" {
		secretPlaces.query[c.Query] = true
	}
}

// isSecretHeader says whether the header named name carries a static secret.
func isSecretHeader(name string) bool {
	name = http.CanonicalHeaderKey(name)
	for _, s := range secretHeaders {
		if s == name {
			return true
		}
	}
	secretPlaces.RLock()
	defer secretPlaces.RUnlock()
	return secretPlaces.headers[name]
}

// redactHeader returns a copy of h with the values of secret headers
// replaced by [redacted].
func redactHeader(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for name, values := range h {
		if !isSecretHeader(name) {
			out[name] = append([]string(nil), values...)
			continue
		}
		hidden := make([]string, len(values))
		for i := range hidden {
			hidden[i] = redacted
		}
		out[name] = hidden
	}
	return out
}

// redactQuery returns the raw query with the values of parameters that
// carry a configured token replaced by [redacted]. The rest of the query is
// kept as it was sent.
func redactQuery(raw string) string {
	if raw == "" {
		return raw
	}
	secretPlaces.RLock()
	defer secretPlaces.RUnlock()
	if len(secretPlaces.query) == 0 {
		return raw
	}
	parts := strings.Split(raw, "&")
	for i, part := range parts {
		name, _, _ := strings.Cut(part, "=")
		if n, err := url.QueryUnescape(name); err == nil && secretPlaces.query[n] {
			parts[i] = name + "=" + url.QueryEscape(redacted)
		}
	}
	return strings.Join(parts, "&")
}

// redactBody returns body with the values of its secret fields replaced by
// [redacted]: the top-level fields of a JSON object or a form that carry a
// static secret, those of every event and those of the scheme that verified
// it. The rest of the body is left byte for byte as it was sent. It reports
// whether it changed anything.
func redactBody(body []byte, scheme string) ([]byte, bool) {
	names := append(slices.Clone(alwaysSecretBodyFields), verify.BodySecrets(scheme)...)
	secret := func(name string) bool {
		return slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, name) })
	}
	switch verify.FormatOf(body) {
	case verify.BodyJSON:
		return redactJSONFields(body, secret)
	case verify.BodyForm:
		return redactFormFields(body, secret)
	}
	return body, false
}

// redactJSONFields replaces the values of the top-level fields of a JSON
// object that secret names. A body that is not valid JSON is shown as it is
// (redaction by value still looks into it).
func redactJSONFields(body []byte, secret func(string) bool) ([]byte, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return body, false
	}
	type span struct{ start, end int64 }
	var spans []span
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return body, false
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return body, false
		}
		if name, _ := key.(string); secret(name) {
			end := dec.InputOffset()
			spans = append(spans, span{end - int64(len(value)), end})
		}
	}
	if len(spans) == 0 {
		return body, false
	}
	var out []byte
	done := int64(0)
	for _, s := range spans {
		out = append(append(out, body[done:s.start]...), `"`+redacted+`"`...)
		done = s.end
	}
	return append(out, body[done:]...), true
}

// redactFormFields replaces the values of the fields of a form that secret
// names, decoded; the other parts are left as they were sent.
func redactFormFields(body []byte, secret func(string) bool) ([]byte, bool) {
	parts := bytes.Split(body, []byte("&"))
	changed := false
	for i, part := range parts {
		name, _, _ := bytes.Cut(part, []byte("="))
		if n, err := url.QueryUnescape(string(name)); err == nil && secret(n) {
			parts[i] = slices.Concat(name, []byte("="+url.QueryEscape(redacted)))
			changed = true
		}
	}
	if !changed {
		return body, false
	}
	return bytes.Join(parts, []byte("&")), true
}
