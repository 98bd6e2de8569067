package verify

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
)

// The senders that carry their secret in the body send either a form
// (application/x-www-form-urlencoded: Hotmart's v1 postbacks, Monetizze) or
// a JSON object (Perfect Pay, Cakto, Hotmart's v1 as JSON). These read one
// top-level field of either, from untrusted bytes.

// BodyFormat is how a body is encoded, as far as its fields go.
type BodyFormat int

const (
	// BodyOther is neither a JSON object nor a form.
	BodyOther BodyFormat = iota
	// BodyJSON is a JSON object.
	BodyJSON
	// BodyForm is name=value pairs joined by &, percent-encoded.
	BodyForm
)

// FormatOf tells a JSON object from a form by their first byte and their
// characters: a form has no white space, braces or quotes of its own (it
// encodes them), and at least one =.
func FormatOf(body []byte) BodyFormat {
	t := bytes.TrimSpace(body)
	switch {
	case len(t) > 0 && t[0] == '{':
		return BodyJSON
	case bytes.IndexByte(t, '=') > 0 && !bytes.ContainsAny(t, " \t\r\n{}\"<>"):
		return BodyForm
	}
	return BodyOther
}

// FormField returns the value of the first field called name in a form
// body, decoded, and whether there is one. A part that does not decode is
// skipped, as a form parser would drop it; a field without = has an empty
// value.
func FormField(body []byte, name string) (string, bool) {
	for part := range strings.SplitSeq(string(body), "&") {
		k, v, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(k)
		if err != nil || key != name {
			continue
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			continue
		}
		return value, true
	}
	return "", false
}

// JSONField returns the top-level string field called name of a JSON
// object, and whether there is one. A number or a boolean is returned as
// its JSON text; anything else (an object, null) is not a field value. With
// a key repeated, the first one counts.
func JSONField(body []byte, name string) (string, bool) {
	s := jsonScanner{data: body}
	if !s.descend(name) {
		return "", false
	}
	v := s.keyText()
	return v, v != ""
}

// BodyField reads the field called name of a JSON object or form body,
// whichever body is.
func BodyField(body []byte, name string) (string, bool) {
	switch FormatOf(body) {
	case BodyJSON:
		return JSONField(body, name)
	case BodyForm:
		return FormField(body, name)
	}
	return "", false
}

// withField returns body with the field name=value added first, for
// signing a sample the way a sender that carries its secret in the body
// sends it.
func withField(body []byte, name, value string) []byte {
	switch FormatOf(body) {
	case BodyForm:
		return []byte(url.QueryEscape(name) + "=" + url.QueryEscape(value) + "&" + string(body))
	case BodyJSON:
		t := bytes.TrimSpace(body)
		k, _ := json.Marshal(name)
		v, _ := json.Marshal(value)
		field := string(k) + ":" + string(v)
		if rest := bytes.TrimSpace(t[1:]); len(rest) > 0 && rest[0] != '}' {
			field += ","
		}
		return []byte("{" + field + string(t[1:]))
	}
	return body
}
