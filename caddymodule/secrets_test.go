package caddymodule

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookinbox/hookinbox/internal/store"
	"github.com/hookinbox/hookinbox/internal/verify"
)

// secretInboxes are the inboxes of TestSecretsNeverShown: each with its
// scheme, the environment variable its secret comes from, and the extra
// lines of its verify block.
var secretInboxes = []struct {
	inbox, scheme, env, secret, block string
	options                           map[string]string
}{
	{"hotmart", "hotmart", "HOOKINBOX_TEST_HOTTOK", "hottok-s3cr3t-Hm7q2", "", nil},
	{"hubla", "hubla", "HOOKINBOX_TEST_HUBLA", "hubla-s3cr3t-Zx81k", "", nil},
	{"custom", "token", "HOOKINBOX_TEST_TOKEN", "token-s3cr3t-Pw4r9", "header X-Custom-Token", map[string]string{"header": "X-Custom-Token"}},
	{"query", "token", "HOOKINBOX_TEST_QTOKEN", "qtoken-s3cr3t-Lm2v5", "query tk", map[string]string{"query": "tk"}},
	{"stripe", "stripe", "HOOKINBOX_TEST_STRIPE", "whsec_stripe-s3cr3t-Qa9e1", "", nil},
	{"github", "github", "HOOKINBOX_TEST_GITHUB", "github-s3cr3t-Bn6t3", "", nil},
	{"hmac", "hmac", "HOOKINBOX_TEST_HMAC", "hmac-s3cr3t-Cv3y8", "header X-Signature", map[string]string{"header": "X-Signature"}},
	{"kiwify", "kiwify", "HOOKINBOX_TEST_KIWIFY", "kiwify-s3cr3t-Kw5p0", "", nil},
	{"eduzz", "eduzz", "HOOKINBOX_TEST_EDUZZ", "eduzz-s3cr3t-Ez7u2", "", nil},
	{"pagbank", "pagbank", "HOOKINBOX_TEST_PAGBANK", "pagbank-s3cr3t-Pb3k8", "", nil},
	{"monetizze", "monetizze", "HOOKINBOX_TEST_MONETIZZE", "monetizze-s3cr3t-Mz1c4", "", nil},
	{"perfectpay", "perfectpay", "HOOKINBOX_TEST_PERFECTPAY", "perfectpay-s3cr3t-Pp6y3", "", nil},
	{"cakto", "cakto", "HOOKINBOX_TEST_CAKTO", "cakto-s3cr3t-Ck2t7", "", nil},
}

func secretsConfig(storage, logFile, backend string) string {
	var routes strings.Builder
	for _, in := range secretInboxes {
		verifyLine := fmt.Sprintf("verify %s {env.%s}", in.scheme, in.env)
		if in.scheme == "token" {
			verifyLine = fmt.Sprintf("verify token {\n\t\t\t\t%s\n\t\t\t\tvalue {env.%s}\n\t\t\t}", in.block, in.env)
		} else if in.block != "" {
			verifyLine += " {\n\t\t\t\t" + in.block + "\n\t\t\t}"
		}
		fmt.Fprintf(&routes, "\troute /hooks/%s {\n\t\thookinbox %s {\n\t\t\t%s\n\t\t\tforward %s\n\t\t\tretry 20ms\n\t\t}\n\t}\n",
			in.inbox, in.inbox, verifyLine, backend)
	}
	return debugGlobalOptions(logFile, storage) + fmt.Sprintf(`http://localhost:9080 {
%s}
`, routes.String())
}

// debugGlobalOptions are the global options of the in-process Caddy of the
// secrets tests: every log line, DEBUG included, into logFile, which the
// tests search for secrets.
func debugGlobalOptions(logFile, storage string) string {
	return fmt.Sprintf(`{
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1s
	skip_install_trust
	log {
		output file %s
		level DEBUG
	}
	hookinbox {
		storage %s
	}
}
`, logFile, storage)
}

// TestSecretsNeverShown sends signed and wrongly signed requests to inboxes
// of every kind of secret, lets the deliveries fail and die, and then looks
// for the secrets in everything hookinbox shows: the admin API (with
// Caddy's own /config/ and /metrics), the command line and the logs.
func TestSecretsNeverShown(t *testing.T) {
	for _, in := range secretInboxes {
		t.Setenv(in.env, in.secret)
	}
	dir := t.TempDir()
	logFile := filepath.Join(dir, "caddy.log")
	app := newSwitchable(t, http.StatusInternalServerError)
	startCaddy(t, secretsConfig(filepath.Join(dir, "store"), logFile, app.srv.URL))

	ids := map[string]string{}
	for _, in := range secretInboxes {
		c := verify.Config{Scheme: in.scheme, Secrets: []string{in.secret}, Header: in.options["header"], Query: in.options["query"]}
		ids[in.inbox] = sendSigned(t, in.inbox, c, http.StatusOK)
		c.Secrets = []string{in.secret + "-wrong"}
		sendSigned(t, in.inbox, c, http.StatusUnauthorized)
	}
	// Hotmart's v1 postbacks: the hottok in a form body, no header.
	ids["hotmart-v1"] = postForm(t, "hotmart", "hottok="+url.QueryEscape(secretInboxes[0].secret)+"&status=approved&transaction=HP1")
	db := activeStore(t)
	waitFor(t, "every event dead", 10*time.Second, func() bool {
		for _, id := range ids {
			if e, _, err := db.Get(id); err != nil || e.State != store.Dead {
				return false
			}
		}
		return true
	})

	shown := map[string]string{}
	for _, path := range []string{"/config/", "/metrics", "/hookinbox/inboxes", "/hookinbox/events"} {
		shown["GET "+path] = adminOK(t, http.MethodGet, path, nil)
	}
	for inbox, id := range ids {
		shown["GET /hookinbox/events/<"+inbox+">"] = adminOK(t, http.MethodGet, "/hookinbox/events/"+id, nil)
		for _, args := range [][]string{{"show", id}, {"show", "--json", id}} {
			out, err := runCommand(t, args...)
			if err != nil {
				t.Fatalf("caddy hookinbox %v: %v", args, err)
			}
			shown[fmt.Sprintf("caddy hookinbox %v (%s)", args, inbox)] = out
		}
	}
	for _, args := range [][]string{{"inboxes"}, {"inboxes", "--json"}, {"list"}, {"list", "--json"}} {
		out, err := runCommand(t, args...)
		if err != nil {
			t.Fatalf("caddy hookinbox %v: %v", args, err)
		}
		shown[fmt.Sprintf("caddy hookinbox %v", args)] = out
	}
	for _, in := range secretInboxes {
		for _, args := range [][]string{
			{"send-test", "--scheme", in.scheme, "--secret", in.secret},
			{"send-test", "--json", "--scheme", in.scheme, "--secret", in.secret},
			{"send-test", "--scheme", in.scheme, "--secret", in.secret + "-wrong"}, // rejected: an error
		} {
			for name, value := range in.options {
				args = append(args, "--option", name+"="+value)
			}
			args = append(args, "http://localhost:9080/hooks/"+in.inbox)
			out, err := runCommand(t, args...)
			if err != nil {
				out += "\n" + err.Error()
			}
			shown[fmt.Sprintf("caddy hookinbox send-test %s %v", in.inbox, args[1:3])] = out
		}
	}
	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatalf("reading Caddy's log: %v", err)
	}
	if !bytes.Contains(logs, []byte("no attempt left")) {
		t.Fatalf("the log file has no delivery lines; is it the right file?\n%s", logs)
	}
	shown["Caddy's log"] = string(logs)

	for where, text := range shown {
		for _, in := range secretInboxes {
			if strings.Contains(text, in.secret) {
				t.Errorf("%s shows the %s secret of inbox %s:\n%s", where, in.scheme, in.inbox, excerpt(text, in.secret))
			}
		}
	}

	// The secrets were stored (the app gets them) and shown redacted.
	redactions := []struct {
		inbox, where, want string
	}{
		{"hotmart", "X-Hotmart-Hottok", `"X-Hotmart-Hottok":["[redacted]"]`},
		{"hubla", "X-Hubla-Token", `"X-Hubla-Token":["[redacted]"]`},
		{"custom", "X-Custom-Token", `"X-Custom-Token":["[redacted]"]`},
		{"query", "the query", `"raw_query":"tk=%5Bredacted%5D"`},
		{"stripe", "Stripe-Signature, not a secret", `"Stripe-Signature":["t=`},
		{"github", "X-Hub-Signature-256, not a secret", `"X-Hub-Signature-256":["sha256=`},
		{"hotmart-v1", "the body's hottok", `hottok=%5Bredacted%5D\u0026status=approved`},
		{"monetizze", "the body's chave_unica", `chave_unica=%5Bredacted%5D\u0026`},
		{"perfectpay", "the body's token", `{\"token\":\"[redacted]\",\"code\":`},
		{"cakto", "the body's secret", `{\"secret\":\"[redacted]\",\"event\":`},
		{"pagbank", "X-Authenticity-Token, not a secret", `"X-Authenticity-Token":["`},
		{"eduzz", "X-Signature, not a secret", `"X-Signature":["`},
	}
	for _, r := range redactions {
		if text := shown["GET /hookinbox/events/<"+r.inbox+">"]; !strings.Contains(text, r.want) {
			t.Errorf("event of %s: %s not shown as %s:\n%s", r.inbox, r.where, r.want, text)
		}
	}
}

// sendSigned sends a sample event of c's scheme to inbox, signed with c,
// and returns the event id when want is 200.
func sendSigned(t *testing.T, inbox string, c verify.Config, want int) string {
	t.Helper()
	target, _ := url.Parse("http://localhost:9080/hooks/" + inbox)
	now := time.Now()
	body, header, err := verify.SignedSample(c, target, now)
	if err != nil {
		t.Fatalf("signing for %s: %v", inbox, err)
	}
	req, _ := http.NewRequest(http.MethodPost, target.String(), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("inbox %s: status %d (%s), want %d", inbox, resp.StatusCode, answer, want)
	}
	if want != http.StatusOK {
		return ""
	}
	return eventID(t, string(answer))
}

// postForm posts a form body to inbox, with no header of the sender's,
// and returns the event id; it must be accepted.
func postForm(t *testing.T, inbox, form string) string {
	t.Helper()
	resp, err := http.Post("http://localhost:9080/hooks/"+inbox, "application/x-www-form-urlencoded", strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("inbox %s: status %d (%s), want 200", inbox, resp.StatusCode, answer)
	}
	return eventID(t, string(answer))
}

func excerpt(text, secret string) string {
	i := strings.Index(text, secret)
	return text[max(i-200, 0):min(i+len(secret)+100, len(text))]
}

func TestRedactHeader(t *testing.T) {
	noteSecretPlaces(verify.Config{Scheme: "token", Header: "x-my-token"})
	noteSecretPlaces(verify.Config{Scheme: "hmac", Header: "X-My-Signature"})
	cases := []struct {
		header string
		secret bool
	}{
		{"X-Hotmart-Hottok", true},
		{"x-hubla-token", true},
		{"X-Gitlab-Token", true},
		{"Authorization", true},
		{"Cookie", true},
		{"X-My-Token", true},
		{"X-My-Signature", false},
		{"Stripe-Signature", false},
		{"Content-Type", false},
	}
	for _, tc := range cases {
		t.Run(tc.header, func(t *testing.T) {
			h := http.Header{}
			h.Add(tc.header, "value-1")
			h.Add(tc.header, "value-2")
			got := redactHeader(h).Values(tc.header)
			want := []string{"value-1", "value-2"}
			if tc.secret {
				want = []string{redacted, redacted}
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("shown as %q, want %q", got, want)
			}
			if h.Get(tc.header) != "value-1" {
				t.Errorf("the stored header was changed")
			}
		})
	}
}

func TestRedactQueryAndBody(t *testing.T) {
	noteSecretPlaces(verify.Config{Scheme: "token", Query: "access_token"})
	if got, want := redactQuery("a=1&access_token=abc&b=2"), "a=1&access_token=%5Bredacted%5D&b=2"; got != want {
		t.Errorf("query = %q, want %q", got, want)
	}
	cases := []struct {
		name, scheme, body, want string
		changed                  bool
	}{
		{"JSON hottok", "hotmart", `{"hottok":"abc","id":"1"}`, `{"hottok":"[redacted]","id":"1"}`, true},
		{"form hottok", "hotmart", `hottok=abc&id=1`, `hottok=%5Bredacted%5D&id=1`, true},
		{"hottok of an event of another scheme", "none", `{"id":"1", "hottok" : "abc"}`, `{"id":"1", "hottok" : "[redacted]"}`, true},
		{"JSON without secret", "hotmart", `{"id":"1"}`, `{"id":"1"}`, false},
		{"not JSON", "hotmart", `hello world`, `hello world`, false},
		{"Monetizze's form, order kept", "monetizze", `venda%5Bcodigo%5D=1&chave_unica=abc&x=%3B`, `venda%5Bcodigo%5D=1&chave_unica=%5Bredacted%5D&x=%3B`, true},
		{"Monetizze's form with a semicolon", "monetizze", `a=1;b&chave_unica=abc`, `a=1;b&chave_unica=%5Bredacted%5D`, true},
		{"an encoded field name", "monetizze", `chave%5Funica=abc`, `chave%5Funica=%5Bredacted%5D`, true},
		{"Perfect Pay's token", "perfectpay", `{"code":"PP1","token":"abc","sale_status_enum":2}`, `{"code":"PP1","token":"[redacted]","sale_status_enum":2}`, true},
		{"Perfect Pay's token repeated", "perfectpay", `{"token":"abc","token":"def"}`, `{"token":"[redacted]","token":"[redacted]"}`, true},
		{"Cakto's secret", "cakto", `{"secret":"abc","event":"purchase_approved"}`, `{"secret":"[redacted]","event":"purchase_approved"}`, true},
		{"token of another scheme is not a secret by name", "stripe", `{"token":"abc"}`, `{"token":"abc"}`, false},
		{"a nested token is left to redaction by value", "perfectpay", `{"data":{"token":"abc"}}`, `{"data":{"token":"abc"}}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, changed := redactBody([]byte(tc.body), tc.scheme)
			if string(got) != tc.want || changed != tc.changed {
				t.Errorf("body = %s (%v), want %s (%v)", got, changed, tc.want, tc.changed)
			}
		})
	}
}

// TestRedactEverySchemesStaticSecret signs a request for every scheme the
// way its sender would and checks that what the admin API would show of it
// holds no secret: a new sender that sends its secret as it is must have
// its header added to secretHeaders.
func TestRedactEverySchemesStaticSecret(t *testing.T) {
	const secret = "whsec_c2VuZC10ZXN0LXNlY3JldC0xMjM0NTY3ODkw"
	for _, s := range verify.Schemes() {
		t.Run(s, func(t *testing.T) {
			c := verify.Config{Scheme: s, Secrets: []string{secret}, Header: sendTestExtras[s]["header"]}
			if _, err := verify.New(c); err != nil {
				t.Skipf("scheme %s takes another kind of secret (a public key, which is no secret): %v", s, err)
			}
			noteSecretPlaces(c)
			target, _ := url.Parse("https://example.com/hooks/" + s)
			body, header, err := verify.SignedSample(c, target, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			shownBody, _ := redactBody(body, s)
			shown := jsonBody(redactHeader(header)) + redactQuery(target.RawQuery) + string(shownBody)
			if strings.Contains(shown, secret) {
				t.Errorf("the %s secret is shown: %s", s, shown)
			}
		})
	}
	t.Run("token in the query", func(t *testing.T) {
		c := verify.Config{Scheme: "token", Secrets: []string{secret}, Query: "key"}
		noteSecretPlaces(c)
		target, _ := url.Parse("https://example.com/hooks/token?a=1")
		if _, err := verify.Sign(c, []byte("{}"), target, time.Now()); err != nil {
			t.Fatal(err)
		}
		if shown := redactQuery(target.RawQuery); strings.Contains(shown, secret) || !strings.Contains(target.RawQuery, secret) {
			t.Errorf("query %q shown as %q", target.RawQuery, shown)
		}
	})
}

// secretValue is a secret with the characters that take another form in
// JSON (/ and " escaped, é as \u00e9), in a query or a form (space as +,
// + as %2B) and in XML.
const secretValue = `Hm7q2/s3cr3t"tok+ é9`

func TestSecretValuesHidden(t *testing.T) {
	sv := newSecretValues([]string{secretValue, "Relaykey12345", "k3y7", "1234", "", "   "})
	cases := []struct {
		name, text, want string
	}{
		{"JSON, nested", `{"data":{"hottok":"Hm7q2/s3cr3t\"tok+ é9"}}`, `{"data":{"hottok":"[redacted]"}}`},
		{"JSON, / escaped as PHP does, é as a u escape", `{"a":"Hm7q2\/s3cr3t\"tok+ \u00e99"}`, `{"a":"[redacted]"}`},
		{"JSON, every character as a u escape in upper case", `{"a":"` + uEscaped(secretValue) + `"}`, `{"a":"[redacted]"}`},
		{"JSON, in an array inside a longer string", `["x","before Hm7q2/s3cr3t\"tok+ é9 after"]`, `["x","before [redacted] after"]`},
		{"JSON, as a key", `{"Hm7q2/s3cr3t\"tok+ é9":1}`, `{"[redacted]":1}`},
		{"JSON, its layout kept", "{ \"a\" : [ 1, \"Hm7q2/s3cr3t\\\"tok+ é9\" ],\n\t\"b\": \"x\\/y\" }", "{ \"a\" : [ 1, \"[redacted]\" ],\n\t\"b\": \"x\\/y\" }"},
		{"JSON in a JSON string", `{"p":"{\"t\":\"Hm7q2\\\/s3cr3t\\\"tok+ é9\"}"}`, `{"p":"{\"t\":\"[redacted]\"}"}`},
		{"JSON with a URL holding it encoded", `{"u":"https://x.test/cb?a=1&t=Hm7q2%2Fs3cr3t%22tok%2B%20%C3%A99"}`, `{"u":"https://x.test/cb?a=1&t=%5Bredacted%5D"}`},
		{"form", `status=ok&tok=Hm7q2%2Fs3cr3t%22tok%2B+%C3%A99`, `status=ok&tok=%5Bredacted%5D`},
		{"form, lower case and partly encoded", `tok=Hm7q2%2fs3cr3t"tok%2b%20%c3%a99&x=1`, `tok=%5Bredacted%5D&x=1`},
		{"form, a field holding JSON", `payload=%7B%22t%22%3A%22Hm7q2%5C%2Fs3cr3t%5C%22tok%2B+%5Cu00e99%22%7D&x=1`, `payload=%7B%22t%22%3A%22%5Bredacted%5D%22%7D&x=1`},
		{"plain text", "the hottok is Hm7q2/s3cr3t\"tok+ é9.\n", "the hottok is [redacted].\n"},
		{"plain text, twice", "Hm7q2/s3cr3t\"tok+ é9 = Hm7q2/s3cr3t\"tok+ é9", "[redacted] = [redacted]"},
		{"XML", `<t a="Hm7q2/s3cr3t&quot;tok+ &#233;9">Hm7q2&#x2f;s3cr3t"tok+ é9</t>`, `<t a="[redacted]">[redacted]</t>`},
		{"binary", "\xff\xfe" + secretValue + "\x00\x80", "\xff\xfe[redacted]\x00\x80"},
		{"header value", `Bearer Hm7q2/s3cr3t"tok+ é9`, `Bearer [redacted]`},
		{"no secret: every byte kept", "{ \"id\" : \"a\\/b\\u00e9\" }", "{ \"id\" : \"a\\/b\\u00e9\" }"},
		{"no secret in a form", `a=%7e&b=+`, `a=%7e&b=+`},
		{"short: a whole JSON string", `{"token":"k3y7","note":"k3y7abc"}`, `{"token":"[redacted]","note":"k3y7abc"}`},
		{"short: a whole JSON number", `{"token":1234,"n":12345}`, `{"token":"[redacted]","n":12345}`},
		{"short: a whole form value", `token=k3y7&note=k3y7abc`, `token=%5Bredacted%5D&note=k3y7abc`},
		{"short: the whole body", "k3y7\n", "[redacted]"},
		{"short: never a part of text", "use k3y7 or 1234 here", "use k3y7 or 1234 here"},
		{"empty secrets hide nothing", "   ", "   "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, changed := sv.hide([]byte(tc.text))
			if string(got) != tc.want {
				t.Errorf("hide(%q)\n = %q\nwant %q", tc.text, got, tc.want)
			}
			if changed != (tc.text != tc.want) {
				t.Errorf("changed = %v", changed)
			}
		})
	}

	queries := []struct{ raw, want string }{
		{"a=1&ref=Hm7q2%2Fs3cr3t%22tok%2B%20%C3%A99", "a=1&ref=%5Bredacted%5D"},
		{"tk=k3y7&x=k3y7k3y7", "tk=%5Bredacted%5D&x=k3y7k3y7"},
		{"a=1&b=%zz", "a=1&b=%zz"},
	}
	for _, q := range queries {
		if got := sv.hideQuery(q.raw); got != q.want {
			t.Errorf("hideQuery(%q) = %q, want %q", q.raw, got, q.want)
		}
	}

	h := sv.hideHeader(http.Header{
		"X-Relay-Secret":  {secretValue, "other"},
		"X-Note":          {"token " + secretValue + " end"},
		"X-Short":         {"k3y7"},
		"X-Relaykey12345": {"named after it"},
	})
	if got := jsonBody(h); strings.Contains(got, "s3cr3t") || strings.Contains(got, "Relaykey12345") || !strings.Contains(got, `"X-Relay-Secret":["[redacted]","other"]`) ||
		!strings.Contains(got, `"X-Note":["token [redacted] end"]`) || !strings.Contains(got, `"X-Short":["[redacted]"]`) {
		t.Errorf("headers shown as %s", got)
	}

	if got, changed := (*secretValues)(nil).hide([]byte(secretValue)); string(got) != secretValue || changed {
		t.Errorf("no secrets configured, yet %q was shown as %q", secretValue, got)
	}
}

// uEscaped writes every character of s as a JSON \u escape in upper case.
func uEscaped(s string) string {
	var b strings.Builder
	for _, r := range s {
		fmt.Fprintf(&b, `\u%04X`, r)
	}
	return b.String()
}

// TestSecretValuesSurviveTheirOwnReplacement: a secret made of the
// characters of [redacted] is not rebuilt by its own replacement.
func TestSecretValuesSurviveTheirOwnReplacement(t *testing.T) {
	for _, secret := range []string{"]]]]]]]]", "ed]ed]ed]", "[redacted][redacted]"} {
		sv := newSecretValues([]string{secret})
		for _, text := range []string{strings.Repeat("]", 40), strings.Repeat(secret, 3) + "acted]", "[redact" + secret} {
			if got, _ := sv.hide([]byte(text)); strings.Contains(string(got), secret) {
				t.Errorf("secret %q: %q shown as %q", secret, text, got)
			}
		}
	}
}

// FuzzSecretValues: whatever the text and the secret, hiding never panics,
// changes nothing when it reports no change, and leaves no secret of
// minSecretLen bytes or more: as it is, inserted anywhere, nor JSON-encoded
// in a JSON document.
func FuzzSecretValues(f *testing.F) {
	f.Add([]byte(`{"data":{"hottok":"x"}}`), secretValue, 5)
	f.Add([]byte("a=1&b=%41%42&c"), "AB-long-secret", 3)
	f.Add([]byte("\xff\x00plain"), "\xff\xfe-not-utf8", 0)
	f.Add([]byte(`["\u00e9\/", 12, {"k": "v"}]`), "]]]]]]]]", 1)
	f.Fuzz(func(t *testing.T, text []byte, secret string, at int) {
		// A text that repeats a long prefix of the secret costs
		// len(text) × len(secret): keep the fuzzer off megabyte inputs.
		if len(text) > 16<<10 || len(secret) > 2*maxPatternLen {
			return
		}
		sv := newSecretValues([]string{secret})
		got, changed := sv.hide(text)
		if !changed && !bytes.Equal(got, text) {
			t.Fatalf("hide(%q) changed the text to %q without saying so", text, got)
		}
		if len(secret) < minSecretLen || strings.TrimSpace(secret) == "" {
			return
		}
		if bytes.Contains(got, []byte(secret)) {
			t.Fatalf("hide(%q) = %q shows %q", text, got, secret)
		}
		at = min(max(at, 0), len(text))
		with := slices.Concat(text[:at], []byte(secret), text[at:])
		if got, _ := sv.hide(with); bytes.Contains(got, []byte(secret)) {
			t.Fatalf("hide(%q) = %q shows %q", with, got, secret)
		}
		if !utf8.ValidString(secret) {
			return
		}
		encoded, _ := json.Marshal(map[string]string{"k": secret, "t": string(text)})
		got, _ = sv.hide(encoded)
		var shown map[string]string
		if json.Unmarshal(got, &shown) == nil && strings.Contains(shown["k"]+shown["t"], secret) {
			t.Fatalf("hide(%s) = %s shows %q", encoded, got, secret)
		}
	})
}

// secretForms are the ways secretValue can be written in what hookinbox
// shows: none of them may appear there. The fragments catch a part of it.
func secretForms() []string {
	jsonForm, _ := json.Marshal(secretValue)
	var pct strings.Builder
	for _, c := range []byte(secretValue) {
		fmt.Fprintf(&pct, "%%%02x", c)
	}
	return []string{
		secretValue, string(jsonForm[1 : len(jsonForm)-1]), `Hm7q2\/s3cr3t\"tok+ \u00e99`,
		url.QueryEscape(secretValue), url.PathEscape(secretValue), pct.String(),
		"Hm7q2", "s3cr3t", "%48%6d%37",
	}
}

// leak says which form of secretValue text shows, if any.
func leak(text string) string {
	for _, form := range secretForms() {
		if strings.Contains(text, form) {
			return form
		}
	}
	return ""
}

// TestSecretValuesNeverShownWhereverTheyStand sends requests that carry an
// inbox's configured hottok in places no sender is known to put it (nested
// in JSON, in a form, in the query, in an unknown header, in a binary
// body…) and checks that the admin API, the command line and the log show
// it nowhere, while the app gets every request byte for byte.
func TestSecretValuesNeverShownWhereverTheyStand(t *testing.T) {
	t.Setenv("HOOKINBOX_TEST_NESTED_HOTTOK", secretValue)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "caddy.log")
	app := newRecorder(t)
	config := func(timeout string) string {
		return debugGlobalOptions(logFile, filepath.Join(dir, "store")) + fmt.Sprintf(`http://localhost:9080 {
	route /hooks/test {
		hookinbox test {
			verify hotmart {env.HOOKINBOX_TEST_NESTED_HOTTOK}
			forward %s
			timeout %s
		}
	}
}
`, app.srv.URL, timeout)
	}
	startCaddy(t, config("30s"))

	const form = "application/x-www-form-urlencoded"
	phpJSON := `{"hottok":"Hm7q2\/s3cr3t\"tok+ \u00e99"}`
	quoted, _ := json.Marshal(secretValue)
	nested, _ := json.Marshal(phpJSON)
	var lowerPct strings.Builder
	for _, c := range []byte(secretValue) {
		fmt.Fprintf(&lowerPct, "%%%02x", c)
	}
	cases := []struct {
		name, contentType, query string
		header                   map[string]string
		body                     []byte
	}{
		{"under data.hottok", "application/json", "", nil, []byte(`{"id":"e1","data":{"hottok":` + string(quoted) + `}}`)},
		{"under data.buyer.hottok, escaped as PHP does", "application/json", "", nil, []byte(`{"id":"e2","data":{"buyer":` + phpJSON + `}}`)},
		{"in an array", "application/json", "", nil, []byte(`{"id":"e3","items":["x",{"k":` + string(quoted) + `}]}`)},
		{"inside a longer string", "application/json", "", nil, []byte(`{"id":"e4","note":"copied ` + string(quoted[1:len(quoted)-1]) + ` by mistake"}`)},
		{"in a JSON string holding JSON", "application/json", "", nil, []byte(`{"id":"e5","payload":` + string(nested) + `}`)},
		{"as the sender's event id", "application/json", "", nil, []byte(`{"id":` + string(quoted) + `}`)},
		{"in a form body", form, "", nil, []byte("status=approved&callback_token=" + url.QueryEscape(secretValue) + "&n=1")},
		{"in a form body, every byte encoded in lower case", form, "", nil, []byte("status=approved&k=" + lowerPct.String())},
		{"in a form field holding JSON", form, "", nil, []byte("payload=" + url.QueryEscape(phpJSON))},
		{"in plain text", "text/plain", "", nil, []byte("the hottok is " + secretValue + "\n")},
		{"in a binary body", "application/octet-stream", "", nil, append(append([]byte{0xff, 0xfe, 0}, secretValue...), 0x80)},
		{"in the query string", "application/json", "ref=" + url.QueryEscape(secretValue) + "&x=1", nil, []byte(`{"id":"e6"}`)},
		{"in the query string, inside a longer value", "application/json", "next=" + url.QueryEscape("https://x.test/?t="+secretValue), nil, []byte(`{"id":"e7"}`)},
		{"in headers not known to carry a secret", "application/json", "",
			map[string]string{"x-relay-secret": secretValue, "X-Note": "token " + secretValue + " end"}, []byte(`{"id":"e8"}`)},
	}
	type sent struct {
		name, query string
		body        []byte
	}
	events := map[string]sent{}
	for _, tc := range cases {
		req, _ := http.NewRequest(http.MethodPost, hookURL, bytes.NewReader(tc.body))
		if tc.query != "" {
			req.URL.RawQuery = tc.query
		}
		req.Header.Set("Content-Type", tc.contentType)
		req.Header.Set("X-HOTMART-HOTTOK", secretValue)
		for name, value := range tc.header {
			req.Header[name] = []string{value} // as written: not canonical
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d (%s)", tc.name, resp.StatusCode, answer)
		}
		events[eventID(t, string(answer))] = sent{tc.name, tc.query, tc.body}
	}
	waitFor(t, "every event delivered", 10*time.Second, func() bool { return len(app.requests()) == len(cases) })

	// Redaction is for display: the store and the app have every byte.
	db := activeStore(t)
	for _, got := range app.requests() {
		id := got.header.Get("Hookinbox-Id")
		want, ok := events[id]
		if !ok {
			t.Fatalf("the app got an unknown event %q", id)
		}
		if !bytes.Equal(got.body, want.body) || got.query != want.query || got.header.Get("X-Hotmart-Hottok") != secretValue {
			t.Errorf("%s: the app got body %q, query %q, hottok %q; want %q, %q and the hottok",
				want.name, got.body, got.query, got.header.Get("X-Hotmart-Hottok"), want.body, want.query)
		}
		e, _, err := db.Get(id)
		if err != nil || !bytes.Equal(e.Body, want.body) || e.RawQuery != want.query {
			t.Errorf("%s: stored %v, %v, want the body and query as sent", want.name, e, err)
		}
	}

	shown := map[string]string{}
	for id, s := range events {
		raw := adminOK(t, http.MethodGet, "/hookinbox/events/"+id, nil)
		shown["GET /hookinbox/events/<"+s.name+">"] = raw
		var d eventDetail
		decode(t, raw, &d)
		body := d.Body
		if d.BodyEncoding == "base64" {
			b, err := base64.StdEncoding.DecodeString(d.Body)
			if err != nil {
				t.Fatalf("%s: body %q is not base64: %v", s.name, d.Body, err)
			}
			body = string(b)
		}
		shown["the body of <"+s.name+">, decoded"] = body + "\n" + jsonBody(d.Header) + "\n" + d.RawQuery + "\n" + d.DedupeKey
		if bytes.Contains(s.body, []byte("s3cr3t")) && (!d.BodyRedacted || !strings.Contains(body, "redacted")) {
			t.Errorf("%s: body shown as %q (body_redacted %v), want it with [redacted]", s.name, body, d.BodyRedacted)
		}
		if d.Header.Get("X-Hotmart-Hottok") != redacted {
			t.Errorf("%s: X-Hotmart-Hottok shown as %q", s.name, d.Header.Get("X-Hotmart-Hottok"))
		}
		for _, args := range [][]string{{"show", id}, {"show", "--json", id}} {
			shown[fmt.Sprintf("caddy hookinbox %v <%s>", args[:len(args)-1], s.name)] = mustRun(t, args...)
		}
	}
	shown["GET /hookinbox/events"] = adminOK(t, http.MethodGet, "/hookinbox/events", nil)
	for _, args := range [][]string{{"list"}, {"list", "--json"}} {
		shown[fmt.Sprintf("caddy hookinbox %v", args)] = mustRun(t, args...)
	}
	logs, err := os.ReadFile(logFile)
	if err != nil || !bytes.Contains(logs, []byte("hookinbox")) {
		t.Fatalf("reading Caddy's log: %v\n%s", err, logs)
	}
	shown["Caddy's log"] = string(logs)

	// A reload that rotates the hottok leaves the old one in history:
	// it stays hidden. (The config must differ, or Caddy skips the load.)
	t.Setenv("HOOKINBOX_TEST_NESTED_HOTTOK", "a-new-hottok-0123456789")
	startCaddy(t, config("31s"))
	if status, _ := send(t, `{"id":"after-rotation"}`, "X-HOTMART-HOTTOK", "a-new-hottok-0123456789"); status != http.StatusOK {
		t.Fatalf("the rotated hottok is refused (%d): the reload did not happen", status)
	}
	for id, s := range events {
		shown["after a rotation, GET /hookinbox/events/<"+s.name+">"] = adminOK(t, http.MethodGet, "/hookinbox/events/"+id, nil)
	}

	for where, text := range shown {
		if form := leak(text); form != "" {
			t.Errorf("%s shows the hottok as %q:\n%s", where, form, excerpt(text, form))
		}
	}
}
