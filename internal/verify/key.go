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
func KeyFromJSON(body []byte, field string) string {
	if field == "" {
		return ""
	}
	cur := json.RawMessage(body)
	for _, seg := range strings.Split(field, ".") {
		cur = bytes.TrimSpace(cur)
		if len(cur) == 0 {
			return ""
		}
		switch cur[0] {
		case '{':
			var obj map[string]json.RawMessage
			if json.Unmarshal(cur, &obj) != nil {
				return ""
			}
			next, ok := obj[seg]
			if !ok {
				return ""
			}
			cur = next
		case '[':
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 {
				return ""
			}
			var arr []json.RawMessage
			if json.Unmarshal(cur, &arr) != nil || i >= len(arr) {
				return ""
			}
			cur = arr[i]
		default:
			return ""
		}
	}
	return scalar(cur)
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
