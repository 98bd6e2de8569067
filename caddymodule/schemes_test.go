package caddymodule

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v85/webhook"
)

// schemeConfig is inboxConfig with another verify line.
func schemeConfig(storage, backend, verifyLine, options string) string {
	return strings.Replace(inboxConfig(storage, backend, options), "verify hotmart test-hottok", verifyLine, 1)
}

// post sends body to the test inbox with the given headers.
func post(t *testing.T, body string, header map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, hookURL, strings.NewReader(body))
	for k, v := range header {
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

// TestStripeSignedEventEndToEnd: an event signed by stripe-go is delivered;
// the same request sent again inside the tolerance is a duplicate, answered
// with the same id and stored once; sent again after the tolerance it is
// refused as expired.
func TestStripeSignedEventEndToEnd(t *testing.T) {
	const secret = "whsec_e2e_test_secret"
	app := newRecorder(t)
	startCaddy(t, schemeConfig(t.TempDir(), app.srv.URL, "verify stripe "+secret+" {\n\t\t\t\ttolerance 2s\n\t\t\t}", ""))

	body := `{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"invoice.paid"}`
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{
		Payload:   []byte(body),
		Secret:    secret,
		Timestamp: time.Now(),
	})
	header := map[string]string{"Stripe-Signature": signed.Header, "Content-Type": "application/json"}

	status, answer := post(t, body, header)
	if status != http.StatusOK {
		t.Fatalf("stripe-go's signature: %d %s, want 200", status, answer)
	}
	id := eventID(t, answer)
	waitFor(t, "delivery", 5*time.Second, func() bool { return len(app.requests()) == 1 })
	got := app.requests()[0]
	if got.header.Get("Hookinbox-Verified") != "stripe" || got.header.Get("Stripe-Signature") != signed.Header || string(got.body) != body {
		t.Errorf("delivered %q with Hookinbox-Verified %q, Stripe-Signature %q",
			got.body, got.header.Get("Hookinbox-Verified"), got.header.Get("Stripe-Signature"))
	}

	status, again := post(t, body, header)
	if status != http.StatusOK || eventID(t, again) != id {
		t.Errorf("the same event inside the tolerance: %d %s, want 200 with id %s", status, again, id)
	}

	time.Sleep(2500 * time.Millisecond)
	status, late := post(t, body, header)
	if status != http.StatusUnauthorized || late != `{"error":"timestamp_expired"}` {
		t.Errorf("the same event after the tolerance: %d %s, want 401 timestamp_expired", status, late)
	}
	if n := len(app.requests()); n != 1 {
		t.Errorf("app received %d copies, want 1", n)
	}
	stats, err := activeStore(t).Inboxes()
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for _, s := range stats {
		for _, n := range s.Counts {
			stored += n
		}
	}
	if stored != 1 {
		t.Errorf("%d events stored, want 1", stored)
	}
}

// TestSlackURLVerificationIsAnsweredNotStored: Slack's endpoint check is
// answered at once with its challenge, once its signature checks out, and
// never queued; a forged one is refused.
func TestSlackURLVerificationIsAnsweredNotStored(t *testing.T) {
	const secret = "8f742231b10e8888abcd99yyyzzz85a5"
	app := newRecorder(t)
	startCaddy(t, schemeConfig(t.TempDir(), app.srv.URL, "verify slack "+secret, ""))

	body := `{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%s:%s", ts, body)
	signature := "v0=" + hex.EncodeToString(mac.Sum(nil))

	status, answer := post(t, body, map[string]string{"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature})
	if status != http.StatusOK || !strings.Contains(answer, "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P") {
		t.Fatalf("url_verification: %d %s, want 200 with the challenge", status, answer)
	}
	status, answer = post(t, body, map[string]string{"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + strings.Repeat("0", 64)})
	if status != http.StatusUnauthorized || strings.Contains(answer, "3eZbrw") {
		t.Errorf("forged url_verification: %d %s, want 401 without the challenge", status, answer)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(app.requests()); n != 0 {
		t.Errorf("app received %d requests; a handshake is not an event", n)
	}
	stats, _ := activeStore(t).Inboxes()
	for _, s := range stats {
		if s.Counts["pending"]+s.Counts["delivered"] != 0 {
			t.Errorf("the handshake was stored: %+v", s.Counts)
		}
	}
}
