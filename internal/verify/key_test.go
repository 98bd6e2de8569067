package verify

import (
	"net/http"
	"testing"
)

func TestKeyFromJSON(t *testing.T) {
	body := `{"id":"evt_1","n":12345678901234567890,"f":1.5e3,"b":true,"nil":null,"data":{"id":"d-1","items":[{"id":7},{"id":"x"}]},"obj":{"a":1},"esc":"a\"b\u00e9"}`
	cases := []struct{ field, want string }{
		{"id", "evt_1"},
		{"n", "12345678901234567890"},
		{"f", "1.5e3"},
		{"b", "true"},
		{"nil", ""},
		{"data.id", "d-1"},
		{"data.items.0.id", "7"},
		{"data.items.1.id", "x"},
		{"data.items.2.id", ""},
		{"data.items.-1.id", ""},
		{"data.items.x", ""},
		{"obj", ""},
		{"missing", ""},
		{"id.deeper", ""},
		{"", ""},
		{"esc", "a\"bé"},
	}
	for _, tc := range cases {
		if got := KeyFromJSON([]byte(body), tc.field); got != tc.want {
			t.Errorf("KeyFromJSON(%q) = %q; want %q", tc.field, got, tc.want)
		}
	}
	for _, garbage := range []string{"", "not json", "{", `{"id":`, "[1,2]", `"id"`, "\x00\xff"} {
		if got := KeyFromJSON([]byte(garbage), "id"); got != "" {
			t.Errorf("KeyFromJSON(%q) = %q", garbage, got)
		}
	}
	if got := KeyFromJSON([]byte(`[{"id":"a"}]`), "0.id"); got != "a" {
		t.Errorf("top-level array: %q", got)
	}
}

func TestKeyFromHeader(t *testing.T) {
	h := http.Header{"X-Event-Id": {" abc "}}
	if got := KeyFromHeader(h, "x-event-id"); got != "abc" {
		t.Errorf("got %q", got)
	}
	if got := KeyFromHeader(h, "X-Other"); got != "" {
		t.Errorf("got %q", got)
	}
}
