package caddymodule

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Redaction by value: the configured secrets themselves (a hottok, a static
// token, an HMAC key), wherever they stand in a stored request, in the forms
// a request carries text in. redact.go's redaction by name knows where
// senders put their secrets; this finds them where nobody expected them (a
// copy of the hottok under data.hottok, in a URL the sender passes along).

// minSecretLen is the length under which a secret is hidden only where it
// is a whole value: a header value, a query or form value, a JSON string or
// number, the whole body. Hiding every "1234" inside longer text would make
// the request unreadable, and the cuts would spell out the secret to whoever
// compares them with what the text should say.
const minSecretLen = 8

// maxNesting bounds how deep hide looks into values that hold text of
// another encoding: a JSON string that holds JSON, a form field that holds
// JSON, a JSON string that holds a URL with a query.
const maxNesting = 4

// maxPatternLen is the length over which a secret is looked for only in a
// few whole forms (literalForms) rather than character by character: such a
// secret is a key file, not a token a sender copies into its payload, and
// its pattern would be slow to build and to run.
const maxPatternLen = 256

// secretValues finds configured secret values in stored requests. The zero
// of it (nil) finds nothing. It is built once per set of secrets and only
// read afterwards: safe for concurrent use.
type secretValues struct {
	// long matches, at the start of a text, every secret of minSecretLen
	// to maxPatternLen bytes in every form of one encoding layer
	// (secretPattern), longest secret first.
	long *regexp.Regexp
	// starts are the bytes a match of long can start with: the regexp is
	// only tried there, which makes a search many times faster than an
	// unanchored one on a large body.
	starts [256]bool
	// literal are the forms of the other long secrets (literalForms).
	literal [][]byte
	// short are the secrets shorter than minSecretLen.
	short map[string]bool
}

// newSecretValues prepares secrets for hiding; nil when there are none.
func newSecretValues(secrets []string) *secretValues {
	secrets = slices.Clone(secrets)
	// Longest first: where one secret holds another, all of it is hidden.
	slices.SortFunc(secrets, func(a, b string) int {
		return cmp.Or(len(b)-len(a), strings.Compare(a, b))
	})
	secrets = slices.Compact(secrets)
	sv := &secretValues{short: map[string]bool{}}
	var long []string
	for _, s := range secrets {
		switch {
		case strings.TrimSpace(s) == "":
		case len(s) < minSecretLen:
			sv.short[s] = true
		case len(s) > maxPatternLen || !utf8.ValidString(s):
			sv.literal = append(sv.literal, literalForms(s)...)
		default:
			long = append(long, s)
		}
	}
	if len(long) > 0 {
		patterns := make([]string, len(long))
		for i, s := range long {
			patterns[i] = secretPattern(s)
			r, _ := utf8.DecodeRuneInString(s)
			for _, c := range []byte{string(r)[0], '%', '\\', '&', '+'} {
				sv.starts[c] = true
			}
		}
		// The patterns are quoted, so this cannot fail. Were it to, its
		// error would quote a secret: it is dropped, and the secrets are
		// still found in their whole forms.
		if re, err := regexp.Compile(`\A(?:` + strings.Join(patterns, "|") + `)`); err == nil {
			sv.long = re
		} else {
			for _, s := range long {
				sv.literal = append(sv.literal, literalForms(s)...)
			}
		}
	}
	if sv.long == nil && len(sv.literal) == 0 && len(sv.short) == 0 {
		return nil
	}
	return sv
}

// literalForms are s as it is, URL-encoded and JSON-encoded (with / and
// with \/), for the secrets secretPattern is not used for.
func literalForms(s string) [][]byte {
	forms := [][]byte{[]byte(s), []byte(url.QueryEscape(s)), []byte(url.PathEscape(s))}
	if utf8.ValidString(s) {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.Encode(s)
		quoted := bytes.TrimSuffix(bytes.TrimSuffix(b.Bytes(), []byte("\n")), []byte(`"`))[1:]
		html, _ := json.Marshal(s)
		forms = append(forms, quoted, html[1:len(html)-1], bytes.ReplaceAll(quoted, []byte("/"), []byte(`\/`)))
	}
	return forms
}

// secretPattern matches s with each of its characters as it is,
// percent-encoded (either case; a space also as +), JSON-escaped (\uXXXX in
// either case, or \/, \", \\, \n…) or as an XML or HTML character reference
// (&#47;, &#x2F;, &quot;…). Each character may take any of its forms, so a
// JSON body that escapes / as \/ (PHP's default), a query that encodes only
// some characters and a JSON string with \u escapes all match.
func secretPattern(s string) string {
	var b strings.Builder
	for _, r := range s {
		forms := []string{regexp.QuoteMeta(string(r))}
		var pct strings.Builder
		for _, c := range []byte(string(r)) {
			fmt.Fprintf(&pct, "%%(?i:%02x)", c)
		}
		forms = append(forms, pct.String())
		if r == ' ' {
			forms = append(forms, `\+`)
		}
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			forms = append(forms, fmt.Sprintf(`\\u(?i:%04x)\\u(?i:%04x)`, r1, r2))
		} else {
			forms = append(forms, fmt.Sprintf(`\\u(?i:%04x)`, r))
		}
		if e, ok := jsonShortEscapes[r]; ok {
			forms = append(forms, regexp.QuoteMeta(e))
		}
		forms = append(forms, fmt.Sprintf(`&#(?:0*%d|[xX]0*(?i:%x));`, r, r))
		if e, ok := xmlEntities[r]; ok {
			forms = append(forms, e)
		}
		b.WriteString("(?:" + strings.Join(forms, "|") + ")")
	}
	return b.String()
}

// jsonShortEscapes are the two-character escapes of JSON strings.
var jsonShortEscapes = map[rune]string{
	'"': `\"`, '\\': `\\`, '/': `\/`, '\b': `\b`, '\f': `\f`, '\n': `\n`, '\r': `\r`, '\t': `\t`,
}

// xmlEntities are the named character references of XML.
var xmlEntities = map[rune]string{'"': "&quot;", '&': "&amp;", '\'': "&apos;", '<': "&lt;", '>': "&gt;"}

// hide returns text with every secret replaced by [redacted], and whether
// it found one. The text may be anything a sender sent: JSON, a form, plain
// text, binary.
func (sv *secretValues) hide(text []byte) ([]byte, bool) {
	if sv == nil {
		return text, false
	}
	return sv.hideAt(text, 0, false)
}

// hideString is hide for a string.
func (sv *secretValues) hideString(s string) string {
	out, changed := sv.hide([]byte(s))
	if !changed {
		return s
	}
	return string(out)
}

// hideHeader returns h with the secrets hidden in its names and values. h
// is a copy already (redactHeader's): it is changed in place.
func (sv *secretValues) hideHeader(h http.Header) http.Header {
	if sv == nil {
		return h
	}
	renamed := map[string]string{}
	for name, values := range h {
		for i, v := range values {
			values[i] = sv.hideString(v)
		}
		if hidden := sv.hideString(name); hidden != name {
			renamed[name] = hidden
		}
	}
	for name, hidden := range renamed {
		h[hidden] = append(h[hidden], h[name]...)
		delete(h, name)
	}
	return h
}

// hideQuery is hide for a raw query string, which is a form whatever it
// looks like.
func (sv *secretValues) hideQuery(raw string) string {
	if sv == nil {
		return raw
	}
	out, changed := sv.hideAt([]byte(raw), 0, true)
	if !changed {
		return raw
	}
	return string(out)
}

// hideAt hides the secrets of text found depth encodings deep. A form is
// split into its names and values; JSON into its strings and numbers; each
// is decoded and looked into again. What is left is searched for the long
// secrets in their one-layer forms.
func (sv *secretValues) hideAt(text []byte, depth int, form bool) ([]byte, bool) {
	if sv.short[string(bytes.TrimSpace(text))] {
		return []byte(redacted), true
	}
	out, changed := text, false
	if depth < maxNesting {
		var c bool
		switch {
		case !form && json.Valid(text):
			out, c = sv.hideInJSON(out, depth)
		case form || looksLikeForm(text):
			out, c = sv.hideInForm(out, depth)
		}
		changed = changed || c
	}
	out, c := sv.hideLong(out)
	return out, changed || c
}

// looksLikeForm: name=value pairs joined by &, which have no white space
// (a form encodes it). Prose with an = sign is left to hideLong, so that
// it is not shown re-encoded.
func looksLikeForm(text []byte) bool {
	t := bytes.TrimSpace(text)
	return bytes.IndexByte(t, '=') >= 0 && !bytes.ContainsAny(t, " \t\r\n")
}

// hideInForm hides the secrets of each name and value of a form (or query),
// decoded. A part that held one is shown encoded again; the others are left
// as they were sent.
func (sv *secretValues) hideInForm(text []byte, depth int) ([]byte, bool) {
	parts := bytes.Split(text, []byte("&"))
	changed := false
	for i, part := range parts {
		name, value, hasValue := bytes.Cut(part, []byte("="))
		n, cn := sv.hideFormPart(name, depth)
		v, cv := sv.hideFormPart(value, depth)
		if !cn && !cv {
			continue
		}
		changed = true
		parts[i] = n
		if hasValue {
			parts[i] = slices.Concat(n, []byte("="), v)
		}
	}
	if !changed {
		return text, false
	}
	return bytes.Join(parts, []byte("&")), true
}

func (sv *secretValues) hideFormPart(part []byte, depth int) ([]byte, bool) {
	decoded, err := url.QueryUnescape(string(part))
	if err != nil {
		return part, false // hideLong still sees it as it is
	}
	out, changed := sv.hideAt([]byte(decoded), depth+1, false)
	if !changed {
		return part, false
	}
	return []byte(url.QueryEscape(string(out))), true
}

// hideInJSON hides the secrets of each string (keys too) and number of a
// valid JSON text, decoded. A string that held one is shown encoded again;
// the rest of the text is left byte for byte as it was sent.
func (sv *secretValues) hideInJSON(text []byte, depth int) ([]byte, bool) {
	var out []byte
	done := 0 // text[:done] is in out
	for i := 0; i < len(text); {
		c := text[i]
		var end int
		switch {
		case c == '"':
			end = stringEnd(text, i)
		case c == '-' || c >= '0' && c <= '9':
			end = i + 1
			for end < len(text) && bytes.IndexByte([]byte("+-.eE0123456789"), text[end]) >= 0 {
				end++
			}
		default:
			i++
			continue
		}
		if replacement, ok := sv.hideJSONValue(text[i:end], depth); ok {
			out = append(append(out, text[done:i]...), replacement...)
			done = end
		}
		i = end
	}
	if out == nil {
		return text, false
	}
	return append(out, text[done:]...), true
}

// stringEnd returns the index just past the JSON string that starts at
// text[start], or len(text) if it does not end.
func stringEnd(text []byte, start int) int {
	for i := start + 1; i < len(text); i++ {
		switch text[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(text)
}

// hideJSONValue hides the secrets of one JSON string or number and returns
// what replaces it, if anything.
func (sv *secretValues) hideJSONValue(token []byte, depth int) ([]byte, bool) {
	if len(token) < 2 {
		return nil, false
	}
	if token[0] != '"' {
		if sv.short[string(token)] {
			return []byte(`"` + redacted + `"`), true
		}
		return nil, false
	}
	s := string(token[1 : len(token)-1])
	if bytes.IndexByte(token, '\\') >= 0 && json.Unmarshal(token, &s) != nil {
		return nil, false
	}
	out, changed := sv.hideAt([]byte(s), depth+1, false)
	if !changed {
		return nil, false
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // shown to people: keep <, > and & readable
	if enc.Encode(string(out)) != nil {
		return nil, false
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), true
}

// hideLong replaces each long secret, in any of its forms, wherever it
// stands. A replacement can complete a secret with the text around it
// (a secret that ends in "ed]"): it is repeated until none is left, and
// should that not end, nothing of the text is shown.
func (sv *secretValues) hideLong(text []byte) ([]byte, bool) {
	out, changed := text, false
	for range 8 {
		found := false
		if hidden, ok := sv.replacePatterns(out); ok {
			out, found = hidden, true
		}
		for _, form := range sv.literal {
			if len(form) > 0 && bytes.Contains(out, form) {
				out = bytes.ReplaceAll(out, form, []byte(redacted))
				found = true
			}
		}
		if !found {
			return out, changed
		}
		changed = true
	}
	return []byte(redacted), true
}

// replacePatterns replaces every match of sv.long, leftmost first, as
// regexp.ReplaceAll would with the pattern unanchored. Each try stops where
// the text stops following a secret, so a search costs about the text's
// length; only a text that repeats a long start of a secret costs up to
// len(text) × len(secret), as an unanchored regexp would.
func (sv *secretValues) replacePatterns(text []byte) ([]byte, bool) {
	if sv.long == nil {
		return text, false
	}
	var out []byte
	done := 0 // text[:done] is in out
	for i := 0; i < len(text); i++ {
		if !sv.starts[text[i]] {
			continue
		}
		m := sv.long.FindIndex(text[i:])
		if m == nil {
			continue
		}
		out = append(append(out, text[done:i]...), redacted...)
		done = i + m[1]
		i = done - 1
	}
	if out == nil {
		return text, false
	}
	return append(out, text[done:]...), true
}
