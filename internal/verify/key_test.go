package verify

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
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
	for _, tc := range []struct{ body, want string }{
		{`{"\u0069d":"escaped key","id":"plain"}`, "escaped key"},
		{`{"id":"first","id":"second"}`, "first"},
		{`{"id":"before garbage",}`, "before garbage"},
		{`{"a":[1,],"id":"after garbage"}`, ""},
		{`{"id":01}`, "0"},
	} {
		if got := KeyFromJSON([]byte(tc.body), "id"); got != tc.want {
			t.Errorf("KeyFromJSON(%s, id) = %q; want %q", tc.body, got, tc.want)
		}
	}
}

// TestKeyFromJSONMatchesDecoder compares KeyFromJSON with encoding/json's
// Decoder on the bodies too big or too deep to seed FuzzKeyFromJSON with.
func TestKeyFromJSONMatchesDecoder(t *testing.T) {
	limit := strings.Repeat("[", maxNesting) + strings.Repeat("]", maxNesting)
	over := "[" + limit + "]"
	cases := []struct{ name, body, field string }{
		{"a skipped value nested to the limit", `{"a":` + limit + `,"id":1}`, "id"},
		{"a skipped value nested past the limit", `{"a":` + over + `,"id":1}`, "id"},
		{"a skipped empty object past the limit", `{"a":` + over[:maxNesting] + `{}` + over[len(over)-maxNesting:] + `,"id":1}`, "id"},
		{"a path deeper than the limit", "[" + over + "]", strings.Repeat("0.", maxNesting+2) + "0"},
		{"the field after a MiB", `{"pad":"` + strings.Repeat("x", 1<<20) + `","id":"after a MiB"}`, "id"},
		{"a MiB of escapes before the field", `{"pad":"` + strings.Repeat(`\u00e9`, 1<<18) + `","id":1}`, "id"},
		{"a MiB string as the field", `{"id":"` + strings.Repeat("é", 1<<19) + `"}`, "id"},
	}
	for _, tc := range cases {
		if got, want := KeyFromJSON([]byte(tc.body), tc.field), decoderKeyFromJSON([]byte(tc.body), tc.field); got != want {
			t.Errorf("%s: KeyFromJSON gives %.40q; encoding/json gives %.40q", tc.name, got, want)
		}
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

// hotmartBody is a Hotmart webhook 2.0 purchase event of about 1 KiB, the
// body hookinbox's main audience sends on every ingest.
const hotmartBody = `{"id":"5e8b3c1a-9f2d-4e7b-8a6c-1d2e3f4a5b6c","creation_date":1764633600000,"event":"PURCHASE_APPROVED","version":"2.0.0",` +
	`"data":{"product":{"id":3528952,"ucode":"a8b1c2d3-e4f5-6789-abcd-ef0123456789","name":"Curso de Marketing Digital",` +
	`"warranty_date":"2026-01-01T00:00:00Z"},` +
	`"buyer":{"email":"comprador@example.com","name":"Maria da Silva","first_name":"Maria","last_name":"da Silva",` +
	`"address":{"city":"São Paulo","country":"Brasil","country_iso":"BR","state":"SP","zipcode":"01001000","address":"Praça da Sé","number":"100"},"document":"12345678909"},` +
	`"commissions":[{"value":8.59,"source":"MARKETPLACE","currency_value":"BRL"},{"value":88.41,"source":"PRODUCER","currency_value":"BRL"}],` +
	`"purchase":{"approved_date":1764633600000,"full_price":{"value":97.0,"currency_value":"BRL"},"price":{"value":97.0,"currency_value":"BRL"},` +
	`"order_date":1764633500000,"status":"APPROVED","transaction":"HP17646336000001","payment":{"installments_number":1,"type":"CREDIT_CARD"},"offer":{"code":"k2pasun0"},"business_model":"I"}}}`

// BenchmarkKeyFromJSON reads Hotmart's event id, which comes first, and a
// field near the end, which makes every value before it be skipped.
func BenchmarkKeyFromJSON(b *testing.B) {
	body := []byte(hotmartBody)
	for _, field := range []string{"id", "data.purchase.transaction"} {
		b.Run(field, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if KeyFromJSON(body, field) == "" {
					b.Fatal("no key")
				}
			}
		})
	}
}

// decoderKeyFromJSON is KeyFromJSON written on encoding/json's Decoder: the
// reference FuzzKeyFromJSON holds KeyFromJSON to.
func decoderKeyFromJSON(body []byte, field string) string {
	if field == "" {
		return ""
	}
	return decoderValueAt(body, strings.Split(field, "."))
}

// decoderJSONField is JSONField written on encoding/json's Decoder.
func decoderJSONField(body []byte, name string) (string, bool) {
	v := decoderValueAt(body, []string{name})
	return v, v != ""
}

func decoderValueAt(body []byte, path []string) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	for _, seg := range path {
		if !decoderDescend(dec, seg) {
			return ""
		}
	}
	var raw json.RawMessage
	if dec.Decode(&raw) != nil {
		return ""
	}
	return decoderScalar(raw)
}

func decoderDescend(dec *json.Decoder, seg string) bool {
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
			if !decoderSkipValue(dec) {
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
			if !decoderSkipValue(dec) {
				return false
			}
		}
	}
	return false
}

func decoderSkipValue(dec *json.Decoder) bool {
	var skip json.RawMessage
	return dec.Decode(&skip) == nil
}

func decoderScalar(raw json.RawMessage) string {
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
