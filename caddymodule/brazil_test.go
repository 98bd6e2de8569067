package caddymodule

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

// The Brazilian senders of the SPEC's second table, through a real Caddy:
// each request is built here from the platform's documented formula, not
// with verify's own signer.

func hmacHex(newHash func() hash.Hash, key, body string) string {
	m := hmac.New(newHash, []byte(key))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

// jwksServer serves the public keys it is given as a JWKS and counts the
// fetches.
type jwksServer struct {
	srv     *httptest.Server
	mu      sync.Mutex
	keys    map[string]*rsa.PublicKey
	fetches atomic.Int64
}

func newJWKSServer(t *testing.T) *jwksServer {
	t.Helper()
	js := &jwksServer{keys: map[string]*rsa.PublicKey{}}
	js.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		js.fetches.Add(1)
		js.mu.Lock()
		defer js.mu.Unlock()
		var keys []string
		for kid, k := range js.keys {
			keys = append(keys, fmt.Sprintf(`{"kty":"RSA","use":"sig","alg":"RS256","kid":%q,"n":%q,"e":%q}`, kid,
				base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
				base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes())))
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"keys":[%s]}`, strings.Join(keys, ","))
	}))
	t.Cleanup(js.srv.Close)
	return js
}

func (js *jwksServer) add(kid string, k *rsa.PublicKey) {
	js.mu.Lock()
	js.keys[kid] = k
	js.mu.Unlock()
}

func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pagarmeSignature is Pagar.me's header: RSA PKCS #1 v1.5 over the
// SHA-256 of the raw body, base64url.
func pagarmeSignature(t *testing.T, key *rsa.PrivateKey, kid, body string) string {
	t.Helper()
	digest := sha256.Sum256([]byte(body))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return "alg=RS256; kid=" + kid + "; signature=" + base64.RawURLEncoding.EncodeToString(sig)
}

// brazilRequest is one request of a case: query, headers and body.
type brazilRequest struct {
	query  string
	header map[string]string
	body   string
}

func (br brazilRequest) send(t *testing.T, inbox string) (int, string) {
	t.Helper()
	u := "http://localhost:9080/hooks/" + inbox
	if br.query != "" {
		u += "?" + br.query
	}
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(br.body))
	for k, v := range br.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(answer))
}

func TestBrazilianSendersThroughCaddy(t *testing.T) {
	const (
		kiwifyToken   = "kiwify-token-3x9"
		eduzzSecret   = "eduzz-secret-7q1"
		pagbankToken  = "pagbank-token-5w2"
		hottok        = "hottok-v1-8k4"
		monetizzeKey  = "monetizze-chave-2m6"
		perfectpayTok = "perfectpay-token-4p8"
		caktoSecret   = "cakto-secret-9c3"
	)
	jwks := newJWKSServer(t)
	pagarmeKey, otherKey := rsaKey(t), rsaKey(t)
	jwks.add("k1", &pagarmeKey.PublicKey)

	app := newRecorder(t)
	inboxes := []struct{ inbox, verify string }{
		{"kiwify", "verify kiwify " + kiwifyToken},
		{"eduzz", "verify eduzz " + eduzzSecret},
		{"pagbank", "verify pagbank " + pagbankToken},
		{"pagarme", "verify pagarme {\n\t\t\t\tjwks " + jwks.srv.URL + "/core/v5/jwks\n\t\t\t}"},
		{"hotmart", "verify hotmart " + hottok},
		{"monetizze", "verify monetizze " + monetizzeKey},
		{"perfectpay", "verify perfectpay " + perfectpayTok},
		{"cakto", "verify cakto " + caktoSecret},
	}
	var routes strings.Builder
	for _, in := range inboxes {
		fmt.Fprintf(&routes, "\troute /hooks/%s {\n\t\thookinbox %s {\n\t\t\t%s\n\t\t\tforward %s\n\t\t}\n\t}\n", in.inbox, in.inbox, in.verify, app.srv.URL)
	}
	startCaddy(t, fmt.Sprintf(`{
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1s
	skip_install_trust
	hookinbox {
		storage %s
	}
}
http://localhost:9080 {
%s}
`, t.TempDir(), routes.String()))

	kiwifyBody := `{"order_id":"a1b2","order_status":"paid","webhook_event_type":"order_approved"}`
	eduzzBody := `{"id":"evt-eduzz-1","event":"myeduzz.invoice_paid","data":{"id":"inv-1"},"sentDate":"2026-12-01T10:00:00Z"}`
	pagbankBody := `{"id":"ORDE_1","charges":[{"id":"CHAR_1","status":"PAID"}]}`
	pagarmeBody := `{"id":"hook_1","type":"order.paid","data":{"id":"or_1","status":"paid"}}`
	sha256Hex := func(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) }
	sig := hmacHex

	cases := []struct {
		inbox, name string
		req         brazilRequest
		want        int
	}{
		// Kiwify: ?signature= lowercase hex HMAC-SHA1 of the raw body, keyed with the token.
		{"kiwify", "signed as documented", brazilRequest{query: "signature=" + sig(sha1.New, kiwifyToken, kiwifyBody), body: kiwifyBody}, 200},
		{"kiwify", "another token", brazilRequest{query: "signature=" + sig(sha1.New, "other", kiwifyBody), body: kiwifyBody}, 401},
		{"kiwify", "another body", brazilRequest{query: "signature=" + sig(sha1.New, kiwifyToken, kiwifyBody), body: strings.Replace(kiwifyBody, "paid", "refunded", 1)}, 401},
		{"kiwify", "a forged signature", brazilRequest{query: "signature=" + strings.Repeat("ab", 20), body: kiwifyBody}, 401},
		{"kiwify", "no signature", brazilRequest{body: kiwifyBody}, 401},
		// Eduzz: x-signature, hex HMAC-SHA256 of the raw body.
		{"eduzz", "signed as documented", brazilRequest{header: map[string]string{"x-signature": sig(sha256.New, eduzzSecret, eduzzBody)}, body: eduzzBody}, 200},
		{"eduzz", "another secret", brazilRequest{header: map[string]string{"x-signature": sig(sha256.New, "other", eduzzBody)}, body: eduzzBody}, 401},
		{"eduzz", "another body", brazilRequest{header: map[string]string{"x-signature": sig(sha256.New, eduzzSecret, eduzzBody)}, body: eduzzBody + " "}, 401},
		{"eduzz", "a forged signature", brazilRequest{header: map[string]string{"x-signature": strings.Repeat("cd", 32)}, body: eduzzBody}, 401},
		// PagBank: x-authenticity-token, hex SHA-256 of "<token>-<body>".
		{"pagbank", "signed as documented", brazilRequest{header: map[string]string{"x-authenticity-token": sha256Hex(pagbankToken + "-" + pagbankBody)}, body: pagbankBody}, 200},
		{"pagbank", "another token", brazilRequest{header: map[string]string{"x-authenticity-token": sha256Hex("other-" + pagbankBody)}, body: pagbankBody}, 401},
		{"pagbank", "another body", brazilRequest{header: map[string]string{"x-authenticity-token": sha256Hex(pagbankToken + "-" + pagbankBody)}, body: strings.Replace(pagbankBody, "PAID", "CANCELED", 1)}, 401},
		{"pagbank", "an HMAC is not PagBank's hash", brazilRequest{header: map[string]string{"x-authenticity-token": sig(sha256.New, pagbankToken, pagbankBody)}, body: pagbankBody}, 401},
		// Pagar.me: RSA PKCS #1 v1.5 SHA-256 over the body, key by kid from the JWKS.
		{"pagarme", "signed as documented", brazilRequest{header: map[string]string{"X-Webhook-Asymmetric-Signature": pagarmeSignature(t, pagarmeKey, "k1", pagarmeBody)}, body: pagarmeBody}, 200},
		{"pagarme", "another key under the same kid", brazilRequest{header: map[string]string{"X-Webhook-Asymmetric-Signature": pagarmeSignature(t, otherKey, "k1", pagarmeBody)}, body: pagarmeBody}, 401},
		{"pagarme", "another body", brazilRequest{header: map[string]string{"X-Webhook-Asymmetric-Signature": pagarmeSignature(t, pagarmeKey, "k1", pagarmeBody)}, body: strings.Replace(pagarmeBody, "paid", "refunded", 2)}, 401},
		{"pagarme", "a forged signature", brazilRequest{header: map[string]string{"X-Webhook-Asymmetric-Signature": "alg=RS256; kid=k1; signature=" + base64.RawURLEncoding.EncodeToString(make([]byte, 256))}, body: pagarmeBody}, 401},
		// Hotmart v1: the hottok in the body, form or JSON, without the header.
		{"hotmart", "v1 form", brazilRequest{header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: "hottok=" + hottok + "&status=approved&transaction=HP1"}, 200},
		{"hotmart", "v1 JSON", brazilRequest{body: `{"hottok":"` + hottok + `","status":"approved","transaction":"HP2"}`}, 200},
		{"hotmart", "v1 form, another hottok", brazilRequest{body: "hottok=other&status=approved"}, 401},
		{"hotmart", "v1 form without hottok", brazilRequest{body: "status=approved&transaction=HP1"}, 401},
		{"hotmart", "a wrong header is not saved by the body", brazilRequest{header: map[string]string{"X-Hotmart-Hottok": "other"}, body: `{"hottok":"` + hottok + `"}`}, 401},
		// Static secrets in the body.
		{"monetizze", "chave_unica in the form", brazilRequest{body: "chave_unica=" + monetizzeKey + "&venda%5Bcodigo%5D=1&venda%5Bstatus%5D=Finalizada"}, 200},
		{"monetizze", "another chave_unica", brazilRequest{body: "chave_unica=other&venda%5Bcodigo%5D=1"}, 401},
		{"monetizze", "no chave_unica", brazilRequest{body: "venda%5Bcodigo%5D=1"}, 401},
		{"perfectpay", "token in the JSON", brazilRequest{body: `{"token":"` + perfectpayTok + `","code":"PP1","sale_status_enum":2}`}, 200},
		{"perfectpay", "another token", brazilRequest{body: `{"token":"other","code":"PP1"}`}, 401},
		{"perfectpay", "the token nested, not the field", brazilRequest{body: `{"code":"PP1","data":{"token":"` + perfectpayTok + `"}}`}, 401},
		{"cakto", "secret in the JSON", brazilRequest{body: `{"secret":"` + caktoSecret + `","event":"purchase_approved","data":{"id":"c1"}}`}, 200},
		{"cakto", "another secret", brazilRequest{body: `{"secret":"other","event":"purchase_approved"}`}, 401},
		{"cakto", "no secret", brazilRequest{body: `{"event":"purchase_approved"}`}, 401},
	}
	accepted := 0
	for _, tc := range cases {
		t.Run(tc.inbox+"/"+tc.name, func(t *testing.T) {
			status, answer := tc.req.send(t, tc.inbox)
			if status != tc.want {
				t.Fatalf("%d %s, want %d", status, answer, tc.want)
			}
		})
		if tc.want == 200 {
			accepted++
		}
	}
	// Delivered as they came, the body secrets included.
	waitFor(t, "deliveries", 5*time.Second, func() bool { return len(app.requests()) == accepted })
	delivered := map[string]bool{}
	for _, r := range app.requests() {
		delivered[string(r.body)] = true
	}
	for _, tc := range cases {
		if tc.want == 200 && !delivered[tc.req.body] {
			t.Errorf("%s/%s: body not delivered byte for byte", tc.inbox, tc.name)
		}
	}

	// An unknown kid fetches the JWKS again at most once a minute: the
	// first request fetched it, so a key added since is not seen yet.
	fetches := jwks.fetches.Load()
	if fetches != 1 {
		t.Errorf("JWKS fetched %d times, want 1", fetches)
	}
	newKey := rsaKey(t)
	jwks.add("k2", &newKey.PublicKey)
	for range 3 {
		status, answer := brazilRequest{header: map[string]string{"X-Webhook-Asymmetric-Signature": pagarmeSignature(t, newKey, "k2", pagarmeBody)}, body: pagarmeBody}.send(t, "pagarme")
		if status != 401 || answer != `{"error":"key_unknown"}` {
			t.Errorf("unknown kid within the minute: %d %s, want 401 key_unknown", status, answer)
		}
	}
	if n := jwks.fetches.Load(); n != fetches {
		t.Errorf("JWKS fetched %d more times within the minute, want none", n-fetches)
	}
}

// TestJWKSRefetchAtMostOncePerMinute: a kid the cache does not hold
// fetches the set again once the minute since the last fetch is over, and
// not before; a failed fetch keeps the keys.
func TestJWKSRefetchAtMostOncePerMinute(t *testing.T) {
	jwks := newJWKSServer(t)
	k1, k2 := rsaKey(t), rsaKey(t)
	jwks.add("k1", &k1.PublicKey)
	now := time.Unix(1_800_000_000, 0)
	c := &jwksCache{url: jwks.srv.URL, client: http.DefaultClient, now: func() time.Time { return now }}
	c.logger.Store(zap.NewNop())

	steps := []struct {
		name        string
		advance     time.Duration
		kid         string
		found       bool
		fetchesThen int64
	}{
		{"the first request fetches", 0, "k1", true, 1},
		{"a held key fetches nothing", time.Second, "k1", true, 1},
		{"an unknown kid within the minute fetches nothing", time.Second, "k2", false, 1},
		{"again", 30 * time.Second, "k2", false, 1},
		{"after the minute it fetches once", 30 * time.Second, "k2", true, 2},
		{"another unknown kid right after: nothing", time.Second, "k3", false, 2},
		{"a minute later: once more", time.Minute, "k3", false, 3},
	}
	for i, s := range steps {
		if i == 1 {
			jwks.add("k2", &k2.PublicKey)
		}
		now = now.Add(s.advance)
		if got := c.Key(s.kid) != nil; got != s.found {
			t.Errorf("%s: key %s found %v, want %v", s.name, s.kid, got, s.found)
		}
		if n := jwks.fetches.Load(); n != s.fetchesThen {
			t.Errorf("%s: %d fetches, want %d", s.name, n, s.fetchesThen)
		}
	}
	jwks.srv.Close()
	now = now.Add(2 * time.Minute)
	if c.Key("k4") != nil || c.Key("k1") == nil {
		t.Error("a failed fetch lost the keys held")
	}
}

// The URL of a JWKS must be http(s).
func TestJWKSURLIsChecked(t *testing.T) {
	for _, u := range []string{"file:///etc/passwd", "jwks.json", "://x"} {
		if _, err := jwksFor(u, zap.NewNop()); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
}
