package caddymodule

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/google/go-github/v75/github"
	"github.com/slack-go/slack"
	"github.com/spf13/cobra"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/hookinbox/hookinbox/internal/store"
	"github.com/hookinbox/hookinbox/internal/verify"
)

// runCommand runs `caddy hookinbox <args>` in-process, as Caddy's command
// line registers it, against the test server's admin endpoint. It returns
// what the command printed.
func runCommand(t *testing.T, args ...string) (string, error) {
	t.Helper()
	registered, ok := caddycmd.Commands()["hookinbox"]
	if !ok {
		t.Fatal("the hookinbox command is not registered")
	}
	root := &cobra.Command{Use: "hookinbox"}
	registered.CobraFunc(root)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(io.Discard)
	if len(args) > 0 && args[0] != "send-test" {
		args = append(args, "--address", "localhost:2999")
	}
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runCommand(t, args...)
	if err != nil {
		t.Fatalf("caddy hookinbox %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func TestCommandShowsWhatTheAdminAPIHolds(t *testing.T) {
	app := newSwitchable(t, http.StatusUnprocessableEntity)
	startCaddy(t, inboxConfig(t.TempDir(), app.srv.URL, "retry 20ms"))
	ids := sendDead(t, 3)

	// Tables.
	out := mustRun(t, "inboxes")
	if !regexpMatch(`(?m)^INBOX\s+PENDING\s+DELIVERING\s+DELIVERED\s+DEAD\s+OLDEST PENDING\s+BREAKER\s+FORWARD$`, out) ||
		!regexpMatch(`(?m)^test\s+0\s+0\s+0\s+3\s+-\s+closed\s+http://127\.0\.0\.1:\d+$`, out) {
		t.Errorf("inboxes table:\n%s", out)
	}
	out = mustRun(t, "list", "--state", "dead")
	for _, id := range ids {
		if !regexpMatch(`(?m)^`+id+`\s+test\s+dead\s+2\s+`, out) {
			t.Errorf("list table has no row for %s:\n%s", id, out)
		}
	}
	out = mustRun(t, "list", "--state", "dead", "--limit", "2")
	if strings.Count(out, " dead ") != 2 || !strings.Contains(out, "--cursor "+ids[1]) {
		t.Errorf("a page of two should end with the cursor of the next:\n%s", out)
	}
	out = mustRun(t, "show", ids[0])
	for _, want := range []string{
		ids[0] + "\n", "dead after 2 attempt(s)", "X-Hotmart-Hottok: " + redacted,
		`{"id":"evt-dead-x"}`, "client_error  HTTP 422", "response: answer of the app",
		"check:    " + outcomeHints[store.OutcomeClientError],
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "test-hottok") {
		t.Errorf("show prints the hottok:\n%s", out)
	}

	// JSON: what the admin API answers.
	var inboxes struct {
		Inboxes []inboxView `json:"inboxes"`
	}
	decode(t, mustRun(t, "inboxes", "--json"), &inboxes)
	if len(inboxes.Inboxes) != 1 || inboxes.Inboxes[0].Counts[store.Dead] != 3 {
		t.Errorf("inboxes --json = %s", jsonBody(inboxes))
	}
	var list struct {
		Events []eventView `json:"events"`
	}
	decode(t, mustRun(t, "list", "--json", "--inbox", "test"), &list)
	if len(list.Events) != 3 || list.Events[0].ID != ids[2] {
		t.Errorf("list --json = %s, want the three events, newest first", jsonBody(list))
	}
	var detail eventDetail
	decode(t, mustRun(t, "show", "--json", ids[0]), &detail)
	if detail.ID != ids[0] || len(detail.History) != 2 || detail.History[1].Hint == "" {
		t.Errorf("show --json = %s", jsonBody(detail))
	}

	// Replay one, then the others in bulk, then delete one.
	app.status.Store(http.StatusOK)
	if out := mustRun(t, "replay", ids[0]); !strings.Contains(out, "Replayed event "+ids[0]) {
		t.Errorf("replay printed %q", out)
	}
	waitFor(t, "the replayed event delivered", 5*time.Second, func() bool {
		e, _, err := activeStore(t).Get(ids[0])
		return err == nil && e.State == store.Delivered
	})
	var bulk struct {
		Replayed int `json:"replayed"`
	}
	decode(t, mustRun(t, "replay", "--json", "--inbox", "test", "--state", "dead"), &bulk)
	if bulk.Replayed != 2 {
		t.Errorf("bulk replay replayed %d, want 2", bulk.Replayed)
	}
	waitFor(t, "every event delivered", 5*time.Second, func() bool {
		return strings.Count(mustRun(t, "list", "--state", "delivered"), " delivered ") == 3
	})
	if out := mustRun(t, "replay", "--inbox", "test"); !strings.Contains(out, "Replayed 0 dead event(s) of inbox test.") {
		t.Errorf("bulk replay with nothing dead printed %q", out)
	}
	if out := mustRun(t, "delete", ids[1]); !strings.Contains(out, "Deleted event "+ids[1]) {
		t.Errorf("delete printed %q", out)
	}

	failures := []struct {
		name string
		args []string
		says string
	}{
		{"show of a deleted event", []string{"show", ids[1]}, "not found (HTTP 404)"},
		{"replay of an unknown inbox", []string{"replay", "--inbox", "nope"}, `unknown inbox "nope" (HTTP 404)`},
		{"replay with both an id and an inbox", []string{"replay", ids[0], "--inbox", "test"}, "not both"},
		{"replay with nothing", []string{"replay"}, "give an event id"},
		{"list with a bad state", []string{"list", "--state", "gone"}, "unknown state"},
		{"list with a cursor that is no event id", []string{"list", "--cursor", "abc"}, "invalid cursor: pass the next_cursor of the previous page (HTTP 400)"},
		{"list with cursor 0", []string{"list", "--cursor", "0"}, "invalid cursor: pass the next_cursor of the previous page (HTTP 400)"},
		{"list with a negative limit", []string{"list", "--limit", "-1"}, `limit must be a whole number from 1 to 1000, got "-1" (HTTP 400)`},
		{"list with a limit over the maximum", []string{"list", "--limit", "5000"}, `limit must be a whole number from 1 to 1000, got "5000" (HTTP 400)`},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runCommand(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error = %v, want one saying %q", err, tc.says)
			}
		})
	}
}

func TestCommandWithoutCaddySaysSo(t *testing.T) {
	registered := caddycmd.Commands()["hookinbox"]
	root := &cobra.Command{Use: "hookinbox"}
	registered.CobraFunc(root)
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	root.SetArgs([]string{"inboxes", "--address", "localhost:1"})
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "is Caddy running") {
		t.Errorf("error = %v, want a hint that Caddy may not be running", err)
	}
}

// sendTestExtras are the settings the token and hmac schemes need besides
// a secret, in the Caddyfile's verify block and as send-test --option.
var sendTestExtras = map[string]map[string]string{
	"token": {"header": "X-Token"},
	"hmac":  {"header": "X-Signature"},
}

// sendTestKeys are the secrets of the schemes that verify with the
// sender's public key: the inbox gets the public key, send-test the
// private one.
func sendTestKeys(t *testing.T) map[string][2]string {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPub, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][2]string{
		"discord":  {hex.EncodeToString(pub), hex.EncodeToString(priv)},
		"sendgrid": {base64.StdEncoding.EncodeToString(ecPub), base64.StdEncoding.EncodeToString(ecPriv)},
	}
}

// TestCommandSendTestAcceptedByHookinbox sends send-test's event of every
// scheme to an inbox that verifies that scheme.
func TestCommandSendTestAcceptedByHookinbox(t *testing.T) {
	const secret = "whsec_c2VuZC10ZXN0LXNlY3JldC0xMjM0NTY3ODkw"
	keys := sendTestKeys(t)
	app := newSwitchable(t, http.StatusOK)
	// Pagar.me signs with its own private key: send-test signs with one
	// generated here, whose public key the test serves as a JWKS, under its
	// RFC 7638 thumbprint as kid.
	jwks := newJWKSServer(t)
	pagarmeKey := rsaKey(t)
	jwks.add(rfc7638Thumbprint(&pagarmeKey.PublicKey), &pagarmeKey.PublicKey)
	pagarmePEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(pagarmeKey)}))
	var routes strings.Builder
	unusable := map[string]error{}
	for _, s := range verify.Schemes() {
		if s == "pagarme" {
			fmt.Fprintf(&routes, "\troute /hooks/%s {\n\t\thookinbox %s {\n\t\t\tverify pagarme {\n\t\t\t\tjwks %s\n\t\t\t}\n\t\t\tforward %s\n\t\t}\n\t}\n", s, s, jwks.srv.URL, app.srv.URL)
			continue
		}
		verifySecret := secret
		if k, ok := keys[s]; ok {
			verifySecret = k[0]
		}
		// A scheme whose secret is not of the generic kind and that this
		// test has no key for cannot be tested here; say so below.
		if _, err := verify.New(verify.Config{Scheme: s, Secrets: []string{verifySecret}, Header: sendTestExtras[s]["header"]}); err != nil {
			unusable[s] = err
			continue
		}
		block := ""
		if extra := sendTestExtras[s]; extra != nil {
			block = " {\n"
			for k, v := range extra {
				block += "\t\t\t\t" + k + " " + v + "\n"
			}
			if s == "token" {
				block += "\t\t\t\tvalue " + verifySecret + "\n"
			}
			block += "\t\t\t}"
		}
		verifyLine := "verify " + s + " " + verifySecret + block
		if s == "token" {
			verifyLine = "verify token" + block
		}
		fmt.Fprintf(&routes, "\troute /hooks/%s {\n\t\thookinbox %s {\n\t\t\t%s\n\t\t\tforward %s\n\t\t}\n\t}\n", s, s, verifyLine, app.srv.URL)
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

	for _, s := range verify.Schemes() {
		t.Run(s, func(t *testing.T) {
			if err := unusable[s]; err != nil {
				t.Skipf("no secret of the kind scheme %s needs: %v", s, err)
			}
			signSecret := secret
			if k, ok := keys[s]; ok {
				signSecret = k[1]
			}
			if s == "pagarme" {
				signSecret = pagarmePEM
			}
			args := []string{"send-test", "--json", "--scheme", s, "--secret", signSecret}
			for k, v := range sendTestExtras[s] {
				args = append(args, "--option", k+"="+v)
			}
			args = append(args, "http://localhost:9080/hooks/"+s)
			out, err := runCommand(t, args...)
			if err != nil {
				t.Fatalf("send-test: %v\n%s", err, out)
			}
			var result sendTestResult
			decode(t, out, &result)
			if result.Status != http.StatusOK || result.EventID == "" {
				t.Fatalf("send-test result = %+v, want 200 with an event id", result)
			}
			e, _, err := activeStore(t).Get(result.EventID)
			if err != nil || e.Verified != s || e.Inbox != s {
				t.Errorf("stored event = %+v, %v; want verified by %s", e, err, s)
			}
			if strings.Contains(out, signSecret) {
				t.Errorf("send-test printed the secret:\n%s", out)
			}
		})
	}
}

// rfc7638Thumbprint is the JWK thumbprint of an RSA key: the base64url
// SHA-256 of {"e":…,"kty":"RSA","n":…} with no white space.
func rfc7638Thumbprint(k *rsa.PublicKey) string {
	canonical := `{"e":"` + base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()) +
		`","kty":"RSA","n":"` + base64.RawURLEncoding.EncodeToString(k.N.Bytes()) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestCommandSendTestAcceptedBySDKs checks send-test's requests with the
// senders' own libraries.
func TestCommandSendTestAcceptedBySDKs(t *testing.T) {
	cases := []struct {
		scheme, secret string
		check          func(r *http.Request, body []byte, secret string) error
	}{
		{"stripe", "whsec_test_send_test_1234567890", func(r *http.Request, body []byte, secret string) error {
			_, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), secret,
				webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
			return err
		}},
		{"standard", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", func(r *http.Request, body []byte, secret string) error {
			wh, err := standardwebhooks.NewWebhook(secret)
			if err != nil {
				return err
			}
			return wh.Verify(body, r.Header)
		}},
		{"github", "github-send-test-secret", func(r *http.Request, body []byte, secret string) error {
			r.Body = io.NopCloser(bytes.NewReader(body))
			_, err := github.ValidatePayload(r, []byte(secret))
			return err
		}},
		{"slack", "slack-send-test-secret", func(r *http.Request, body []byte, secret string) error {
			sv, err := slack.NewSecretsVerifier(r.Header, secret)
			if err != nil {
				return err
			}
			sv.Write(body)
			return sv.Ensure()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.scheme, func(t *testing.T) {
			var mu sync.Mutex
			var checkErr error
			got := false
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				defer mu.Unlock()
				got = true
				if checkErr = tc.check(r, body, tc.secret); checkErr != nil {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				io.WriteString(w, `{"ok":true}`)
			}))
			defer srv.Close()
			out, err := runCommand(t, "send-test", "--scheme", tc.scheme, "--secret", tc.secret, srv.URL+"/hook")
			mu.Lock()
			defer mu.Unlock()
			if !got {
				t.Fatalf("nothing was sent: %v\n%s", err, out)
			}
			if checkErr != nil {
				t.Fatalf("the %s SDK rejects send-test's request: %v", tc.scheme, checkErr)
			}
			if err != nil || !strings.Contains(out, "200 OK") || !strings.Contains(out, `{"ok":true}`) {
				t.Errorf("send-test: %v\n%s", err, out)
			}
		})
	}
}

func TestCommandSendTestRefusesBadInput(t *testing.T) {
	cases := []struct {
		name string
		args []string
		says string
	}{
		{"no scheme", []string{"send-test", "--secret", "s", "http://localhost:1/"}, "--scheme is required"},
		{"no secret", []string{"send-test", "--scheme", "github", "http://localhost:1/"}, "--secret"},
		{"unknown scheme", []string{"send-test", "--scheme", "nope", "--secret", "s3cr3t-value", "http://localhost:1/"}, "unknown verify scheme"},
		{"not a URL", []string{"send-test", "--scheme", "github", "--secret", "s3cr3t-value", "localhost"}, "not an http(s) URL"},
		{"bad option", []string{"send-test", "--scheme", "token", "--secret", "s3cr3t-value", "--option", "colour=red", "http://localhost:1/"}, "--option"},
		{"bad header", []string{"send-test", "--scheme", "github", "--secret", "s3cr3t-value", "--header", "novalue", "http://localhost:1/"}, "name:value"},
		{"nobody listening", []string{"send-test", "--scheme", "github", "--secret", "s3cr3t-value", "http://localhost:1/"}, "sending the test event"},
	}
	t.Setenv(sendTestSecretEnv, "")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCommand(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error = %v, want one saying %q", err, tc.says)
			}
			if strings.Contains(out+err.Error(), "s3cr3t-value") {
				t.Errorf("the secret is printed: %s %v", out, err)
			}
		})
	}
}

func TestAdminErrorMessages(t *testing.T) {
	cases := []struct {
		in, want string
	}{
		{`caddy responded with error: HTTP 404: {"error":"event x not found"}` + "\n", "event x not found (HTTP 404)"},
		{`caddy responded with error: HTTP 502: bad gateway`, "HTTP 502: bad gateway"},
		{`performing request: dial tcp 127.0.0.1:2019: connect: connection refused`, "is Caddy running"},
	}
	for _, tc := range cases {
		if got := adminError("localhost:2019", errors.New(tc.in)).Error(); !strings.Contains(got, tc.want) {
			t.Errorf("adminError(%q) = %q, want it to contain %q", tc.in, got, tc.want)
		}
	}
}

func decode(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("decoding %q: %v", out, err)
	}
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }

func mustParseURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
