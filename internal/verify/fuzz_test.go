package verify

import (
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The parsers below read headers and bodies that anyone on the Internet
// can send. Each must never panic, and must answer either a result or a
// well-formed rejection.

func checkRejection(t *testing.T, rej *Rejection) {
	t.Helper()
	if rej == nil {
		return
	}
	if rej.Reason == "" || (rej.Status != http.StatusBadRequest && rej.Status != http.StatusUnauthorized) {
		t.Fatalf("bad rejection %+v", rej)
	}
}

func FuzzStripeSignature(f *testing.F) {
	f.Add("t=1492774577,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd")
	f.Add("t=1,v1=zz,v0=ab,v1=")
	f.Add(",,=,t=")
	f.Fuzz(func(t *testing.T, header string) {
		ts, sigs, rej := parseStripeSignature(header)
		checkRejection(t, rej)
		if rej == nil && (!isDigits(ts) || len(sigs) == 0) {
			t.Fatalf("accepted %q: ts=%q sigs=%d", header, ts, len(sigs))
		}
		v := &stripeVerifier{keys: [][]byte{[]byte("k")}, window: time.Minute}
		v.Verify(&Request{Header: http.Header{"Stripe-Signature": {header}}, Now: t0})
	})
}

func FuzzStandardSignatures(f *testing.F) {
	f.Add(standardSig)
	f.Add("v1a,abc v1,=== v2,x")
	f.Add("  ,, v1,")
	f.Fuzz(func(t *testing.T, header string) {
		sigs, rej := parseStandardSignatures(header)
		checkRejection(t, rej)
		if rej == nil && len(sigs) == 0 {
			t.Fatalf("accepted %q with no signature", header)
		}
	})
}

func FuzzPaddleSignature(f *testing.F) {
	f.Add("ts=1671552777;h1=eb4d0dc8853be92b7f063b9f3ba5233eb920a09459b6e6b2c26705b4364db151")
	f.Add("ts=;h1=;;=")
	f.Fuzz(func(t *testing.T, header string) {
		ts, sigs, rej := parsePaddleSignature(header)
		checkRejection(t, rej)
		if rej == nil && (!isDigits(ts) || len(sigs) == 0) {
			t.Fatalf("accepted %q", header)
		}
	})
}

// FuzzSlackSignature covers X-Slack-Signature and its timestamp through
// the whole verifier.
func FuzzSlackSignature(f *testing.F) {
	f.Add(slackDocSig, slackDocTS, slackDocBody)
	f.Add("v0=", "", "")
	f.Add("v0=zz", "99999999999999999999", "{}")
	v, _ := New(Config{Scheme: "slack", Secrets: []string{slackDocSecret}})
	f.Fuzz(func(t *testing.T, sig, ts, body string) {
		res, err := v.Verify(&Request{Body: []byte(body), Now: time.Unix(1531420618, 0),
			Header: http.Header{"X-Slack-Signature": {sig}, "X-Slack-Request-Timestamp": {ts}}})
		if err != nil {
			checkRejection(t, err.(*Rejection))
			return
		}
		if res.Scheme != "slack" {
			t.Fatal("accepted without scheme")
		}
	})
}

// FuzzHMACSignature covers the prefix and the decoding of both
// encodings.
func FuzzHMACSignature(f *testing.F) {
	f.Add("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "sha256=", false)
	f.Add("NqcMFqpD9dzRa5H+M4QPyKeHcMF2sF7HZcNvvr5kf/E=", "", true)
	f.Add("=", "=", true)
	f.Fuzz(func(t *testing.T, value, prefix string, b64 bool) {
		enc := hexEncoding
		if b64 {
			enc = base64Encoding
		}
		sig, rej := parseHMACSignature(value, prefix, enc)
		checkRejection(t, rej)
		if rej == nil {
			if len(sig) == 0 {
				t.Fatal("accepted an empty signature")
			}
			if !b64 && !strings.EqualFold(hex.EncodeToString(sig), strings.TrimPrefix(strings.TrimSpace(value), prefix)) {
				t.Fatalf("decoded %q wrong", value)
			}
		}
	})
}

// FuzzContentTemplate covers the parser of the hmac content option, which
// comes from configuration rather than from senders, but must still
// never panic.
func FuzzContentTemplate(f *testing.F) {
	f.Add("{timestamp}.{body}")
	f.Add("{{{header.X-A}}}{url}{id}")
	f.Add("{header.}{")
	f.Fuzz(func(t *testing.T, s string) {
		tmpl, err := parseTemplate(s)
		if err != nil {
			return
		}
		r := &Request{Header: http.Header{}, Body: []byte("b")}
		tmpl.render(r, "", "1", "id")
	})
}

// FuzzKeyFromJSON holds KeyFromJSON and JSONField to the encoding/json
// Decoder they must answer as (decoderKeyFromJSON): a different answer can
// merge two events under one dedupe key, or split one event in two. Besides
// the fuzzed field it asks for a few common ones, so that random bodies
// reach a field more often. Bodies nested to encoding/json's limit and
// bodies of a MiB are in TestKeyFromJSONMatchesDecoder: as seeds they slow
// the fuzzer down more than they teach it.
func FuzzKeyFromJSON(f *testing.F) {
	body := `{"id":"evt_1","n":12345678901234567890,"f":1.5e3,"b":true,"nil":null,"data":{"id":"d-1","items":[{"id":7},{"id":"x"}]},"obj":{"a":1},"esc":"a\"b\u00e9"}`
	for _, field := range []string{"id", "n", "f", "b", "nil", "data.id", "data.items.0.id", "data.items.1.id", "data.items.2.id", "data.items.-1.id", "data.items.x", "obj", "missing", "id.deeper", "", "esc"} {
		f.Add([]byte(body), field)
	}
	for _, garbage := range []string{"", "not json", "{", `{"id":`, "[1,2]", `"id"`, "\x00\xff"} {
		f.Add([]byte(garbage), "id")
	}
	deep := strings.Repeat(`{"a":[`, 50) + strings.Repeat("]}", 50)
	for _, c := range []struct{ body, field string }{
		{`{"id":"evt_1","data":{"id":12}}`, "data.id"},
		{`[{"id":1e400}]`, "0.id"},
		{`{"a":[[[]]]}`, "a.0.0.0"},
		{hotmartBody, "id"},
		{hotmartBody, "data.purchase.transaction"},
		{hotmartBody, "data.commissions.1.value"},
		{`{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","api_version":"2023-10-16","created":1686089970,"data":{"object":{"id":"pi_3NG8Du2eZvKYlo2C0b4MbVwv","object":"payment_intent","amount":2000,"metadata":{}}},"livemode":false,"pending_webhooks":0,"request":{"id":null,"idempotency_key":"a\/b"},"type":"payment_intent.succeeded"}`, "data.object.id"},
		{`{"action":"opened","number":2,"pull_request":{"id":279147437,"labels":[],"draft":false,"merged_at":null},"repository":{"id":186853002,"full_name":"o/r"},"sender":{"login":"u","id":21031067}}`, "pull_request.id"},
		{`{"id":"first","id":"second"}`, "id"},
		{`{"\u0069d":"escaped key","id":"plain"}`, "id"},
		{`{"i\u0064":1}`, "id"},
		{"{\"i\xffd\":1}", "i\uFFFDd"},
		{`{"\ud800":2}`, "\uFFFD"},
		{`{"id":"\ud83d\ude00 \ud800 \u00e9 \n\t\"\\\/\b\f\r"}`, "id"},
		{"{\"id\":\"caf\xe9\"}", "id"},
		{`{"a.b":1,"a":{"b":2}}`, "a.b"},
		{`{"":{"":"empty"}}`, "."},
		{`{"n":-0.0e+0}`, "n"},
		{`{"n":01}`, "n"},
		{`{"n":1.}`, "n"},
		{`{"n":-}`, "n"},
		{`{"n":1e5x`, "n"},
		{`{"t":true,"f":false,"z":null}`, "f"},
		{`{"t":tru}`, "t"},
		{`{"a":[1,2,}],"id":"x"}`, "id"},
		{`{"a":01,"id":"x"}`, "id"},
		{`{"id":"x",garbage after`, "id"},
		{`{"id":"x"} trailing`, "id"},
		{`{"a" : [ 1 , { "b" : [ true ] } ] , "id" : "x" }`, "a.1.b.0"},
		{`[10,20,30]`, "2"},
		{`[10,20,30]`, "+1"},
		{`[10,20,30]`, "-0"},
		{`[10,20,]`, "2"},
		{`{"a":1,}`, "b"},
		{`{,"id":1}`, "id"},
		{`{"a":1 "id":2}`, "id"},
		{`{"id" 1}`, "id"},
		{"{\"a\":\"tab\tin string\",\"id\":1}", "id"},
		{`{"b":` + deep + `,"id":1}`, "id"},
		{deep, strings.Repeat("a.0.", 50)},
		{`{"pad":"` + strings.Repeat("x", 64<<10) + `","id":"after 64 KiB"}`, "id"},
	} {
		f.Add([]byte(c.body), c.field)
	}
	fields := []string{"id", "a", "0", "a.b", "a.0", "data.id"}
	f.Fuzz(func(t *testing.T, body []byte, field string) {
		for _, field := range append(fields, field) {
			if got, want := KeyFromJSON(body, field), decoderKeyFromJSON(body, field); got != want {
				t.Fatalf("KeyFromJSON(%q, %q) = %q; encoding/json gives %q", body, field, got, want)
			}
			got, gotOK := JSONField(body, field)
			if want, wantOK := decoderJSONField(body, field); got != want || gotOK != wantOK {
				t.Fatalf("JSONField(%q, %q) = %q, %v; encoding/json gives %q, %v", body, field, got, gotOK, want, wantOK)
			}
		}
	})
}

func FuzzUnixTimestamp(f *testing.F) {
	f.Add("1531420618")
	f.Add("1531420618000")
	f.Add("-1")
	f.Add("999999999999999999")
	f.Fuzz(func(t *testing.T, s string) {
		tm, ok := unixSecondsOrMillis(s)
		if ok {
			checkTime(tm, t0, time.Minute)
		}
	})
}

func FuzzPagerDutySignatures(f *testing.F) {
	f.Add("v1=f03de6f61df6e454f3620c4d6aca17ad072d3f8bbb2760eac3b2ad391b5e8073,v1=130dcacb53a94d983a37cf2acba98e805a1c37185309ba56fdcccbcf00d6dd8b")
	f.Add("v1=,v2=ab, v1=zz")
	f.Fuzz(func(t *testing.T, header string) {
		sigs, rej := parsePagerDutySignatures(header)
		checkRejection(t, rej)
		if rej == nil && len(sigs) == 0 {
			t.Fatalf("accepted %q", header)
		}
	})
}

func FuzzMercadoPagoSignature(f *testing.F) {
	f.Add("ts=1704908010,v1=618c85345248dd820d5fd456117c2ab2ef8eda45a0282ff693eac24131a5e839", "https://e.com/h?data.id=ABC&type=payment")
	f.Add("ts=,v1=", "https://e.com/h?data.id=%zz")
	v, _ := New(Config{Scheme: "mercadopago", Secrets: []string{"k"}, Tolerance: time.Minute})
	f.Fuzz(func(t *testing.T, header, rawURL string) {
		ts, sigs, rej := parseMercadoPagoSignature(header)
		checkRejection(t, rej)
		if rej == nil && (!isDigits(ts) || len(sigs) == 0) {
			t.Fatalf("accepted %q", header)
		}
		u, err := url.Parse(rawURL)
		if err != nil {
			u = nil
		}
		v.Verify(&Request{URL: u, Header: http.Header{"X-Signature": {header}}, Now: t0})
	})
}

// FuzzBodySignatures covers the schemes whose signature or timestamp is
// read from the body or a form (mailgun, linear, twilio).
func FuzzBodySignatures(f *testing.F) {
	f.Add([]byte(`{"signature":{"timestamp":"1","token":"t","signature":"00"}}`), "sig")
	f.Add([]byte("timestamp=1&token=t&signature=ab%zz"), "")
	f.Add([]byte(`{"webhookTimestamp":1e99}`), "abcd")
	schemes := []Config{
		{Scheme: "mailgun", Secrets: []string{"k"}, Tolerance: time.Minute},
		{Scheme: "linear", Secrets: []string{"k"}},
		{Scheme: "twilio", Secrets: []string{"k"}},
	}
	var vs []Verifier
	for _, c := range schemes {
		v, err := New(c)
		if err != nil {
			f.Fatal(err)
		}
		vs = append(vs, v)
	}
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		for _, v := range vs {
			r := &Request{URL: &url.URL{Scheme: "https", Host: "e.com", Path: "/h"}, Body: body, Now: t0,
				Header: http.Header{"Linear-Signature": {sig}, "X-Twilio-Signature": {sig}}}
			if _, err := v.Verify(r); err != nil {
				checkRejection(t, err.(*Rejection))
			}
		}
	})
}
