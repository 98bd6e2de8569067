package caddymodule

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
http://localhost:9080 {
%s}
`, logFile, storage, routes.String())
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
	body := verify.SampleBody(c.Scheme, now)
	header, err := verify.Sign(c, body, target, now)
	if err != nil {
		t.Fatalf("signing for %s: %v", inbox, err)
	}
	req, _ := http.NewRequest(http.MethodPost, target.String(), bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
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

func excerpt(text, secret string) string {
	i := strings.Index(text, secret)
	return text[max(i-200, 0):min(i+len(secret)+100, len(text))]
}

func TestRedactHeader(t *testing.T) {
	noteSecretPlaces(VerifyConfig{Scheme: "token", Header: "x-my-token"})
	noteSecretPlaces(VerifyConfig{Scheme: "hmac", Header: "X-My-Signature"})
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
	noteSecretPlaces(VerifyConfig{Scheme: "token", Query: "access_token"})
	if got, want := redactQuery("a=1&access_token=abc&b=2"), "a=1&access_token=%5Bredacted%5D&b=2"; got != want {
		t.Errorf("query = %q, want %q", got, want)
	}
	cases := []struct {
		name, body, want string
		changed          bool
	}{
		{"JSON hottok", `{"hottok":"abc","id":"1"}`, `{"hottok":"[redacted]","id":"1"}`, true},
		{"form hottok", `hottok=abc&id=1`, `hottok=%5Bredacted%5D&id=1`, true},
		{"JSON without secret", `{"id":"1"}`, `{"id":"1"}`, false},
		{"not JSON", `hello world`, `hello world`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, changed := redactBody([]byte(tc.body))
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
			vc := VerifyConfig{Scheme: s, Secrets: []string{secret}, Header: sendTestExtras[s]["header"]}
			c := verify.Config{Scheme: s, Secrets: vc.Secrets, Header: vc.Header}
			if _, err := verify.New(c); err != nil {
				t.Skipf("scheme %s takes another kind of secret (a public key, which is no secret): %v", s, err)
			}
			noteSecretPlaces(vc)
			target, _ := url.Parse("https://example.com/hooks/" + s)
			body := verify.SampleBody(s, time.Now())
			header, err := verify.Sign(c, body, target, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			shown := jsonBody(redactHeader(header)) + redactQuery(target.RawQuery)
			if strings.Contains(shown, secret) {
				t.Errorf("the %s secret is shown: %s", s, shown)
			}
		})
	}
	t.Run("token in the query", func(t *testing.T) {
		vc := VerifyConfig{Scheme: "token", Secrets: []string{secret}, Query: "key"}
		noteSecretPlaces(vc)
		target, _ := url.Parse("https://example.com/hooks/token?a=1")
		if _, err := verify.Sign(verify.Config{Scheme: "token", Secrets: vc.Secrets, Query: "key"}, []byte("{}"), target, time.Now()); err != nil {
			t.Fatal(err)
		}
		if shown := redactQuery(target.RawQuery); strings.Contains(shown, secret) || !strings.Contains(target.RawQuery, secret) {
			t.Errorf("query %q shown as %q", target.RawQuery, shown)
		}
	})
}
