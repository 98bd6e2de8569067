package verify

import (
	"net/http"
	"strconv"
	"strings"
)

// KeyFromHeader returns the value of the named header, trimmed, for
// `dedupe_key header <name>`. It is "" when the header is absent.
func KeyFromHeader(h http.Header, name string) string {
	return strings.TrimSpace(h.Get(name))
}

// KeyFromJSON returns the value at field in a JSON body, for
// `dedupe_key json <field>`. field is a dotted path ("data.id"); a
// segment that is a number indexes an array ("items.0.id"). A string is
// returned as is; a number or a boolean as its JSON text (12345, not
// 1.2345e4). Anything else (missing, null, an object, an array, a body
// that is not JSON) gives "".
//
// It stops at the field, without reading the rest of the body: a sender's
// event id usually comes first, and this runs on every request of the
// ingest path. What comes before the field must be valid JSON. With a key
// repeated, the first one counts.
func KeyFromJSON(body []byte, field string) string {
	if field == "" {
		return ""
	}
	s := jsonScanner{data: body}
	for seg := range strings.SplitSeq(field, ".") {
		if !s.descend(seg) {
			return ""
		}
	}
	return s.keyText()
}

// keyText renders the string, number or boolean s stands before as key
// text; anything else is "".
func (s *jsonScanner) keyText() string {
	c, _ := s.peek()
	switch {
	case c == '"':
		quoted, plain, ok := s.str()
		if !ok {
			return ""
		}
		return decodeString(quoted, plain)
	case c == '-' || isDigit(c):
		start := s.pos
		if !s.number() {
			return ""
		}
		return string(s.data[start:s.pos])
	case c == 't' && s.literal("true"):
		return "true"
	case c == 'f' && s.literal("false"):
		return "false"
	}
	return ""
}

// descend moves s, standing before a value, to just before the value at
// seg of that object or array. It reports whether there is one.
func (s *jsonScanner) descend(seg string) bool {
	c, ok := s.peek()
	if !ok {
		return false
	}
	s.pos++
	switch c {
	case '{':
		for n := 0; ; n++ {
			if n > 0 && !s.expect(',') {
				return false
			}
			if c, ok := s.peek(); !ok || c != '"' {
				return false
			}
			quoted, plain, ok := s.str()
			if !ok {
				return false
			}
			if isKey(quoted, plain, seg) {
				return s.expect(':')
			}
			if !s.expect(':') || !s.skipValue() {
				return false
			}
		}
	case '[':
		i, err := strconv.Atoi(seg)
		if err != nil || i < 0 {
			return false
		}
		for n := 0; ; n++ {
			if n > 0 && !s.expect(',') {
				return false
			}
			if n == i {
				return true
			}
			if !s.skipValue() {
				return false
			}
		}
	}
	return false
}
