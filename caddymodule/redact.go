package caddymodule

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
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

// secretBodyFields are body fields that carry a static secret: Hotmart's
// older postbacks repeat the hottok in the body.
var secretBodyFields = []string{"hottok"}

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
func noteSecretPlaces(c VerifyConfig) {
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

// redactBody returns body with the values of secret fields replaced by
// [redacted], for a JSON object or a form-encoded body; other bodies are
// returned as they are. It reports whether it changed anything.
func redactBody(body []byte) ([]byte, bool) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var fields map[string]json.RawMessage
		if json.Unmarshal(trimmed, &fields) != nil {
			return body, false
		}
		changed := false
		for _, name := range secretBodyFields {
			for key := range fields {
				if strings.EqualFold(key, name) {
					fields[key] = json.RawMessage(`"` + redacted + `"`)
					changed = true
				}
			}
		}
		if !changed {
			return body, false
		}
		out, err := json.Marshal(fields)
		if err != nil {
			return body, false
		}
		return out, true
	}
	// A form body: name=value&… with no spaces or braces.
	if !bytes.Contains(body, []byte("=")) || bytes.ContainsAny(body, " \n{}<>") {
		return body, false
	}
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return body, false
	}
	changed := false
	for _, name := range secretBodyFields {
		for key := range values {
			if strings.EqualFold(key, name) {
				values[key] = []string{redacted}
				changed = true
			}
		}
	}
	if !changed {
		return body, false
	}
	return []byte(values.Encode()), true
}
