package verify

import (
	"bytes"
	"encoding/json"
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
// It reads the body as a stream and stops at the field: a sender's event id
// usually comes first, and this runs on every request of the ingest path.
// With a key repeated, the first one counts.
func KeyFromJSON(body []byte, field string) string {
	if field == "" {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	for seg := range strings.SplitSeq(field, ".") {
		if !descend(dec, seg) {
			return ""
		}
	}
	var raw json.RawMessage
	if dec.Decode(&raw) != nil {
		return ""
	}
	return scalar(raw)
}

// descend moves dec, standing before a value, to just before the value at
// seg of that object or array. It reports whether there is one.
func descend(dec *json.Decoder, seg string) bool {
	tok, err := dec.Token()
	if err != nil {
		return false
	}
	switch tok {
	case json.Delim('{'):
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return false
			}
			if key == seg {
				return true
			}
			if !skipValue(dec) {
				return false
			}
		}
	case json.Delim('['):
		i, err := strconv.Atoi(seg)
		if err != nil || i < 0 {
			return false
		}
		for n := 0; dec.More(); n++ {
			if n == i {
				return true
			}
			if !skipValue(dec) {
				return false
			}
		}
	}
	return false
}

// skipValue moves dec past one value.
func skipValue(dec *json.Decoder) bool {
	var skip json.RawMessage
	return dec.Decode(&skip) == nil
}

// scalar renders a JSON string, number or boolean as key text.
func scalar(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		return s
	case c == '-' || (c >= '0' && c <= '9'):
		var n json.Number
		if json.Unmarshal(raw, &n) != nil {
			return ""
		}
		return n.String()
	case bytes.Equal(raw, []byte("true")), bytes.Equal(raw, []byte("false")):
		return string(raw)
	}
	return ""
}
