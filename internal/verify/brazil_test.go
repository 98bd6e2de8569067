package verify

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestBrazilianConfigErrors(t *testing.T) {
	cases := map[string]Config{
		"kiwify with an empty token":        {Scheme: "kiwify", Secrets: []string{""}},
		"kiwify with a blank token":         {Scheme: "kiwify", Secrets: []string{"  "}},
		"kiwify with no token":              {Scheme: "kiwify"},
		"kiwify with a header":              {Scheme: "kiwify", Secrets: []string{"t"}, Header: "X-Sig"},
		"pagbank with a tolerance":          {Scheme: "pagbank", Secrets: []string{"t"}, Tolerance: 1},
		"monetizze with a jwks":             {Scheme: "monetizze", Secrets: []string{"t"}, JWKS: "https://example.com/jwks"},
		"pagarme with a secret":             {Scheme: "pagarme", Secrets: []string{"t"}, Keys: keyMap{}},
		"pagarme without its key set":       {Scheme: "pagarme", JWKS: "https://example.com/jwks"},
		"pagarme with an option of another": {Scheme: "pagarme", Keys: keyMap{}, Header: "X-Sig"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := New(c); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// keyMap is a KeySet of fixed keys.
type keyMap map[string]*rsa.PublicKey

func (k keyMap) Key(kid string) *rsa.PublicKey { return k[kid] }

// Two events about one sale, approved then refunded, must never share a
// dedupe key: where the sender documents no event id, there is none.
func TestBrazilianDedupeKeysTellApprovalFromRefund(t *testing.T) {
	cases := []struct {
		scheme             string
		approval, refund   string
		wantDistinctEvents bool // the scheme has an event id
	}{
		{"eduzz", `{"id":"evt-1","event":"myeduzz.invoice_paid","data":{"id":"inv-1"}}`, `{"id":"evt-2","event":"myeduzz.invoice_refunded","data":{"id":"inv-1"}}`, true},
		{"hotmart", `{"id":"h-1","event":"PURCHASE_APPROVED","data":{"purchase":{"transaction":"HP1"}}}`, `{"id":"h-2","event":"PURCHASE_REFUNDED","data":{"purchase":{"transaction":"HP1"}}}`, true},
		{"kiwify", `{"order_id":"o-1","order_status":"paid"}`, `{"order_id":"o-1","order_status":"refunded"}`, false},
		{"pagbank", `{"id":"ORDE_1","charges":[{"status":"PAID"}]}`, `{"id":"ORDE_1","charges":[{"status":"CANCELED"}]}`, false},
		{"monetizze", `venda%5Bcodigo%5D=1&venda%5Bstatus%5D=Finalizada`, `venda%5Bcodigo%5D=1&venda%5Bstatus%5D=Devolvida`, false},
		{"perfectpay", `{"code":"PP1","sale_status_enum":2}`, `{"code":"PP1","sale_status_enum":7}`, false},
		{"cakto", `{"event":"purchase_approved","data":{"id":"c-1"}}`, `{"event":"refund","data":{"id":"c-1"}}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.scheme, func(t *testing.T) {
			c := Config{Scheme: tc.scheme, Secrets: []string{"s3cr3t-token"}}
			v := mustNew(t, c)
			ids := make([]string, 2)
			for i, body := range []string{tc.approval, tc.refund} {
				u := mustURL(t, "https://example.com/hooks/x")
				b, h, err := signedBody(c, []byte(body), u)
				if err != nil {
					t.Fatal(err)
				}
				res, err := v.Verify(&Request{Method: http.MethodPost, URL: u, Header: h, Body: b, Now: t0})
				if err != nil {
					t.Fatalf("own signature rejected: %v", err)
				}
				ids[i] = res.EventID
			}
			if tc.wantDistinctEvents {
				if ids[0] == "" || ids[0] == ids[1] {
					t.Fatalf("event ids %q: want two distinct ids", ids)
				}
			} else if ids[0] != "" || ids[1] != "" {
				t.Fatalf("event ids %q: the sender documents none, want none", ids)
			}
		})
	}
	// Hotmart's v1 postbacks have no event id.
	v := mustNew(t, Config{Scheme: "hotmart", Secrets: []string{"tok-1"}})
	res, err := v.Verify(&Request{Header: http.Header{}, Body: []byte("hottok=tok-1&id=1&status=approved"), Now: t0})
	if err != nil || res.EventID != "" {
		t.Fatalf("v1 form: %+v, %v; want accepted without an event id", res, err)
	}
}

// signedBody signs body as the sender of c's scheme would, the secret put
// in the body for those that carry it there.
func signedBody(c Config, body []byte, u *url.URL) ([]byte, http.Header, error) {
	v, err := New(c)
	if err != nil {
		return nil, nil, err
	}
	if bs, ok := v.(bodySigner); ok {
		return bs.signBody(body, u, t0)
	}
	h, err := Sign(c, body, u, t0)
	return body, h, err
}

func TestBodyField(t *testing.T) {
	cases := []struct {
		body, name, want string
		found            bool
	}{
		{`{"token":"a","x":1}`, "token", "a", true},
		{` {"x":{"token":"nested"},"token":"top"}`, "token", "top", true},
		{`{"token":"a","token":"b"}`, "token", "a", true},
		{`{"token":12}`, "token", "12", true},
		{`{"token":null}`, "token", "", false},
		{`{"token":{"a":1}}`, "token", "", false},
		{`chave_unica=k%2B1&a=1`, "chave_unica", "k+1", true},
		{`a=1&chave%5Funica=k`, "chave_unica", "k", true},
		{`a=1;b=2&hottok=h`, "hottok", "h", true},
		{`hottok=%zz&hottok=h`, "hottok", "h", true},
		{`a=1&b=2`, "hottok", "", false},
		{`plain text`, "hottok", "", false},
		{`["token","a"]`, "token", "", false},
	}
	for _, tc := range cases {
		got, found := BodyField([]byte(tc.body), tc.name)
		if got != tc.want || found != tc.found {
			t.Errorf("BodyField(%s, %s) = %q, %v; want %q, %v", tc.body, tc.name, got, found, tc.want, tc.found)
		}
	}
}

// FuzzBodyField: the parsers of both body formats never panic, read a form
// as url.ParseQuery does where it parses the form, and a JSON object as
// encoding/json does where its keys are unique.
func FuzzBodyField(f *testing.F) {
	for _, s := range []string{`{"token":"a"}`, `hottok=a&b=1`, `chave_unica=%41`, `{"a":{"b":1},"token":"x\u0041"}`, `a=1;b`, `=&=`, `{`, ``} {
		f.Add([]byte(s), "token")
		f.Add([]byte(s), "hottok")
	}
	f.Fuzz(func(t *testing.T, body []byte, name string) {
		got, found := BodyField(body, name)
		switch FormatOf(body) {
		case BodyForm:
			if q, err := url.ParseQuery(string(body)); err == nil {
				if vs, ok := q[name]; ok != found || (ok && vs[0] != got) {
					t.Fatalf("form %q field %q: got %q, %v; ParseQuery %q", body, name, got, found, vs)
				}
			}
		case BodyJSON:
			var m map[string]json.RawMessage
			if json.Unmarshal(body, &m) == nil && !strings.Contains(string(body), `\`) {
				if raw, ok := m[name]; ok && strings.Count(string(body), `"`+name+`"`) == 1 {
					var s string
					if json.Unmarshal(raw, &s) == nil && (s != got || (s != "" && !found)) {
						t.Fatalf("JSON %q field %q: got %q, want %q", body, name, got, s)
					}
				}
			}
		default:
			if found {
				t.Fatalf("%q is neither JSON nor a form, yet field %q = %q", body, name, got)
			}
		}
		withField(body, name, got) // never panics
	})
}

// FuzzParseJWKS: a key set from the network never panics the parser, and
// what it keeps is an RSA key of at least 2048 bits with an odd exponent.
func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"k","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"k","use":"enc","n":"","e":""}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseJWKS(data)
		if err != nil {
			return
		}
		for kid, k := range keys {
			if kid == "" || k.N.BitLen() < 2048 || k.E < 3 || k.E%2 == 0 {
				t.Fatalf("kept a weak or nameless key %q", kid)
			}
		}
	})
}

// FuzzPagarmeSignature: the header parser never panics and returns either
// a rejection or a key id with signature bytes.
func FuzzPagarmeSignature(f *testing.F) {
	f.Add("alg=RS256; kid=k1; signature=AAAA")
	f.Add("signature=ab==;kid=x;alg=RS256")
	f.Add("alg=RS256;kid=;signature=")
	f.Fuzz(func(t *testing.T, header string) {
		kid, sig, rej := ParsePagarmeSignature(header)
		if rej == nil && (kid == "" || len(sig) == 0) {
			t.Fatalf("%q: accepted with kid %q and %d signature bytes", header, kid, len(sig))
		}
	})
}

func TestPagarmeSignedWithATestKey(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	u := mustURL(t, "https://example.com/hooks/pagarme")
	body, h, err := SignedSample(Config{Scheme: "pagarme", Secrets: []string{pemKey}}, u, t0)
	if err != nil {
		t.Fatal(err)
	}
	v := mustNew(t, Config{Scheme: "pagarme", Keys: keyMap{JWKThumbprint(&key.PublicKey): &key.PublicKey}})
	good := &Request{Method: http.MethodPost, URL: u, Header: h, Body: body, Now: t0}
	res, err := v.Verify(good)
	if err != nil || !strings.HasPrefix(res.EventID, "hook_") {
		t.Fatalf("%+v, %v: want accepted with the hook's id", res, err)
	}
	checkCases(t, v, good, []rejectCase{
		{name: "another body", change: appendBody, reason: ReasonSignatureMismatch},
		{name: "unknown kid", change: setHeader("X-Webhook-Asymmetric-Signature", strings.Replace(h.Get("X-Webhook-Asymmetric-Signature"), "kid=", "kid=x", 1)), reason: ReasonKeyUnknown},
		{name: "another algorithm", change: setHeader("X-Webhook-Asymmetric-Signature", strings.Replace(h.Get("X-Webhook-Asymmetric-Signature"), "RS256", "HS256", 1)), reason: ReasonSignatureMalformed, status: 400},
		{name: "no header", change: delHeader("X-Webhook-Asymmetric-Signature"), reason: ReasonSignatureMissing},
	})
	if _, err := Sign(Config{Scheme: "pagarme", Secrets: []string{"not a key"}}, body, u, t0); err == nil || strings.Contains(err.Error(), "not a key") {
		t.Fatalf("signing with no private key: %v", err)
	}
}
