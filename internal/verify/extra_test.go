package verify

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	twilio "github.com/twilio/twilio-go/client"
)

func TestVerifyBitbucketDocVector(t *testing.T) {
	// From Bitbucket's "Manage webhooks" documentation.
	good := &Request{Body: []byte("Hello World!"), Now: t0, Header: http.Header{
		"X-Hub-Signature": {"sha256=a4771c39fbe90f317c7824e83ddef3caae9cb3d976c214ace1f2937e133263c9"},
		"X-Request-Uuid":  {"req-1"},
	}}
	v := mustNew(t, Config{Scheme: "bitbucket", Secrets: []string{"It's a Secret to Everybody"}})
	res, err := v.Verify(good)
	if err != nil || res.EventID != "req-1" {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	checkCases(t, v, good, []rejectCase{
		{name: "accepted"},
		{name: "body changed", change: appendBody, reason: ReasonSignatureMismatch},
		{name: "missing", change: delHeader("X-Hub-Signature"), reason: ReasonSignatureMissing},
		{name: "sha1 prefix", change: setHeader("X-Hub-Signature", "sha1=a4771c39"), reason: ReasonSignatureMalformed, status: 400},
	})
}

func TestVerifySquareSDKVector(t *testing.T) {
	// The test vector of Square's SDKs (WebhooksHelper).
	const body = `{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z","data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}`
	const notificationURL = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9"
	good := &Request{URL: mustURL(t, notificationURL), Body: []byte(body), Now: t0, Header: http.Header{
		"X-Square-Hmacsha256-Signature": {"GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4="}}}
	v := mustNew(t, Config{Scheme: "square", Secrets: []string{"Ibxx_5AKakO-3qeNVR61Dw"}})
	res, err := v.Verify(good)
	if err != nil || res.EventID != "ac3ac95b-f97d-458c-a6e6-18981597e05f" {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	checkCases(t, v, good, []rejectCase{
		{name: "accepted"},
		{name: "body changed", change: appendBody, reason: ReasonSignatureMismatch},
		{name: "another URL", change: func(r *Request) { r.URL = mustURL(t, "http://127.0.0.1:8080/hooks") }, reason: ReasonSignatureMismatch},
		{name: "missing", change: delHeader("X-Square-Hmacsha256-Signature"), reason: ReasonSignatureMissing},
	})
	t.Run("behind a proxy, with the public URL configured", func(t *testing.T) {
		v := mustNew(t, Config{Scheme: "square", Secrets: []string{"Ibxx_5AKakO-3qeNVR61Dw"}, URL: notificationURL})
		r := good.clone()
		r.URL = mustURL(t, "http://127.0.0.1:8080/hooks/square")
		_, err := v.Verify(r)
		wantReason(t, err, "", 0)
	})
}

func TestVerifyTwilioSDKVectors(t *testing.T) {
	// The vectors of twilio-go's RequestValidator tests.
	form := "Digits=1234&CallSid=CA1234567890ABCDE&To=%2B18005551212&Caller=%2B14158675309&From=%2B14158675309&ReasonConferenceEnded=test&Reason=Participant"
	good := &Request{Method: "POST", URL: mustURL(t, "https://mycompany.com/myapp.php?foo=1&bar=2"), Body: []byte(form), Now: t0,
		Header: http.Header{"X-Twilio-Signature": {"vOEb5UThFn24KEfnOFLQY2AE5FY="}, "I-Twilio-Idempotency-Token": {"idem"}}}
	v := mustNew(t, Config{Scheme: "twilio", Secrets: []string{"12345"}})
	res, err := v.Verify(good)
	if err != nil || res.EventID != "idem" {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	checkCases(t, v, good, []rejectCase{
		{name: "accepted"},
		{name: "accepted with the port in the URL", change: func(r *Request) { r.URL = mustURL(t, "https://mycompany.com:443/myapp.php?foo=1&bar=2") }},
		{name: "accepted with parameters in another order", change: func(r *Request) {
			r.Body = []byte("Reason=Participant&ReasonConferenceEnded=test&From=%2B14158675309&Caller=%2B14158675309&To=%2B18005551212&CallSid=CA1234567890ABCDE&Digits=1234")
		}},
		{name: "a parameter changed", change: func(r *Request) { r.Body = bytes.Replace(r.Body, []byte("1234&"), []byte("1235&"), 1) }, reason: ReasonSignatureMismatch},
		{name: "query changed", change: func(r *Request) { r.URL = mustURL(t, "https://mycompany.com/myapp.php?foo=2&bar=2") }, reason: ReasonSignatureMismatch},
		{name: "missing", change: delHeader("X-Twilio-Signature"), reason: ReasonSignatureMissing},
		{name: "not base64", change: setHeader("X-Twilio-Signature", "%%%"), reason: ReasonSignatureMalformed, status: 400},
	})

	t.Run("JSON body with bodySHA256", func(t *testing.T) {
		body := []byte(`{"property": "value", "boolean": true}`)
		u := "https://mycompany.com/myapp.php?bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
		rv := twilio.NewRequestValidator("12345")
		sig := base64.StdEncoding.EncodeToString(mac(sha1.New, []byte("12345"), []byte(u)))
		if !rv.ValidateBody(u, body, sig) {
			t.Fatal("twilio-go disagrees with the vector")
		}
		good := &Request{Method: "POST", URL: mustURL(t, u), Body: body, Now: t0, Header: http.Header{"X-Twilio-Signature": {sig}}}
		checkCases(t, v, good, []rejectCase{
			{name: "accepted"},
			{name: "body changed", change: appendBody, reason: ReasonSignatureMismatch},
		})
	})
}

func TestVerifyTwilioAgainstTwilioGo(t *testing.T) {
	rv := twilio.NewRequestValidator("auth-token")
	c := Config{Scheme: "twilio", Secrets: []string{"auth-token"}}
	for _, body := range [][]byte{SampleBody("twilio", t0), []byte(`{"event":"hookinbox"}`)} {
		r := signed(t, c, body, "https://example.com/hooks/twilio?x=1", t0)
		if !rv.ValidateBody(r.URL.String(), body, r.Header.Get("X-Twilio-Signature")) {
			t.Errorf("twilio-go rejects our signature of %s", body)
		}
		if _, err := mustNew(t, c).Verify(r); err != nil {
			t.Errorf("own signature rejected: %v", err)
		}
	}
}

func TestVerifyDiscordAgainstDiscordGo(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := Config{Scheme: "discord", Secrets: []string{hex.EncodeToString(pub)}}
	v := mustNew(t, c)
	body := SampleBody("discord", t0)

	// Our Sign (with the private key), discordgo's check.
	signer := Config{Scheme: "discord", Secrets: []string{hex.EncodeToString(priv)}}
	r := signed(t, signer, body, "https://example.com/hooks/discord", t0)
	hr := httptest.NewRequest("POST", "/hooks/discord", bytes.NewReader(body))
	hr.Header = r.Header.Clone()
	if !discordgo.VerifyInteraction(hr, pub) {
		t.Fatal("discordgo rejects our signature")
	}
	res, err := v.Verify(r)
	if err != nil || res.EventID != KeyFromJSON(body, "id") || res.Handshake != nil {
		t.Fatalf("res=%+v err=%v", res, err)
	}

	// What discordgo accepts, signed the way Discord documents, we accept.
	ts := strconv.FormatInt(t0.Unix(), 10)
	ping := []byte(`{"application_id":"1","id":"2","token":"t","type":1,"version":1}`)
	sig := hex.EncodeToString(ed25519.Sign(priv, append([]byte(ts), ping...)))
	good := &Request{Body: ping, Now: t0, Header: http.Header{"X-Signature-Ed25519": {sig}, "X-Signature-Timestamp": {ts}}}
	hr = httptest.NewRequest("POST", "/", bytes.NewReader(ping))
	hr.Header = good.Header.Clone()
	if !discordgo.VerifyInteraction(hr, pub) {
		t.Fatal("discordgo rejects the vector")
	}
	res, err = v.Verify(good)
	if err != nil || res.Handshake == nil || string(res.Handshake.Body) != `{"type":1}` {
		t.Fatalf("PING: res=%+v err=%v", res, err)
	}
	checkCases(t, v, good, []rejectCase{
		{name: "accepted ping"},
		{name: "body changed", change: appendBody, reason: ReasonSignatureMismatch},
		{name: "timestamp changed", change: setHeader("X-Signature-Timestamp", ts+"1"), reason: ReasonSignatureMismatch},
		{name: "signature missing", change: delHeader("X-Signature-Ed25519"), reason: ReasonSignatureMissing},
		{name: "timestamp missing", change: delHeader("X-Signature-Timestamp"), reason: ReasonTimestampMissing},
		{name: "signature not hex", change: setHeader("X-Signature-Ed25519", "xyz"), reason: ReasonSignatureMalformed, status: 400},
		{name: "accepted late: no window by default", change: at(t0.Add(24 * time.Hour))},
	})
	t.Run("with a tolerance", func(t *testing.T) {
		v := mustNew(t, Config{Scheme: "discord", Secrets: c.Secrets, Tolerance: time.Minute})
		checkCases(t, v, good, []rejectCase{
			{name: "too old", change: at(t0.Add(2 * time.Minute)), reason: ReasonTimestampExpired},
			{name: "too far in the future", change: at(t0.Add(-2 * time.Minute)), reason: ReasonTimestampInFuture},
		})
	})
	t.Run("sign with the public key says why not", func(t *testing.T) {
		_, err := Sign(c, body, mustURL(t, "https://e.com"), t0)
		if err == nil || !strings.Contains(err.Error(), "private key") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("public key not hex", func(t *testing.T) {
		if _, err := New(Config{Scheme: "discord", Secrets: []string{"nothex"}}); err == nil {
			t.Fatal("accepted")
		}
	})
}

func TestVerifySendGridSDKVector(t *testing.T) {
	// The vector of sendgrid-go's helpers/eventwebhook tests.
	const (
		publicKey  = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA=="
		privateKey = "MHcCAQEEIEQmZgBEh9DcU9zMl34czK3xov4AYvm9P3r7rNB2dNXtoAoGCCqGSM49AwEHoUQDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA=="
		signature  = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0="
	)
	body, _ := json.Marshal(map[string]any{"event": "test_event", "category": "example_payload", "message_id": "message_id"})
	good := &Request{Body: body, Now: time.Unix(1588788367, 0), Header: http.Header{
		"X-Twilio-Email-Event-Webhook-Signature": {signature}, "X-Twilio-Email-Event-Webhook-Timestamp": {"1588788367"}}}
	v := mustNew(t, Config{Scheme: "sendgrid", Secrets: []string{publicKey}})
	checkCases(t, v, good, []rejectCase{
		{name: "accepted"},
		{name: "body changed", change: appendBody, reason: ReasonSignatureMismatch},
		{name: "timestamp changed", change: setHeader("X-Twilio-Email-Event-Webhook-Timestamp", "1588788368"), reason: ReasonSignatureMismatch},
		{name: "signature missing", change: delHeader("X-Twilio-Email-Event-Webhook-Signature"), reason: ReasonSignatureMissing},
		{name: "timestamp missing", change: delHeader("X-Twilio-Email-Event-Webhook-Timestamp"), reason: ReasonTimestampMissing},
		{name: "signature not base64", change: setHeader("X-Twilio-Email-Event-Webhook-Signature", "%%"), reason: ReasonSignatureMalformed, status: 400},
		{name: "signature not DER", change: setHeader("X-Twilio-Email-Event-Webhook-Signature", "AAAA"), reason: ReasonSignatureMismatch},
	})
	t.Run("sign with the private key, verify with the public one", func(t *testing.T) {
		sample := SampleBody("sendgrid", t0)
		r := signed(t, Config{Scheme: "sendgrid", Secrets: []string{privateKey}}, sample, "https://e.com/h", t0)
		_, err := v.Verify(r)
		wantReason(t, err, "", 0)
	})
	t.Run("sign with the public key says why not", func(t *testing.T) {
		if _, err := Sign(Config{Scheme: "sendgrid", Secrets: []string{publicKey}}, body, mustURL(t, "https://e.com"), t0); err == nil {
			t.Fatal("signed with a public key")
		}
	})
}

func TestVerifyZoom(t *testing.T) {
	const secret = "zoom-secret-token"
	v := mustNew(t, Config{Scheme: "zoom", Secrets: []string{"old", secret}})
	body := []byte(`{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}`)
	ts := strconv.FormatInt(t0.Unix(), 10)
	sig := "v0=" + hex.EncodeToString(mac(sha256.New, []byte(secret), []byte("v0:"+ts+":"), body))
	good := &Request{Body: body, Now: t0, Header: http.Header{"X-Zm-Signature": {sig}, "X-Zm-Request-Timestamp": {ts}}}
	res, err := v.Verify(good)
	if err != nil || res.Handshake == nil {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	var answer map[string]string
	if err := json.Unmarshal(res.Handshake.Body, &answer); err != nil {
		t.Fatal(err)
	}
	want := hex.EncodeToString(mac(sha256.New, []byte(secret), []byte("qgg8vlvZRS6UYooatFL8Aw")))
	if answer["plainToken"] != "qgg8vlvZRS6UYooatFL8Aw" || answer["encryptedToken"] != want || res.Handshake.ContentType != "application/json" {
		t.Fatalf("answer = %s", res.Handshake.Body)
	}
	checkCases(t, v, good, []rejectCase{
		{name: "accepted"},
		{name: "unsigned challenge", change: delHeader("X-Zm-Signature"), reason: ReasonSignatureMissing},
		{name: "body changed", change: appendBody, reason: ReasonSignatureMismatch},
		{name: "too old", change: at(t0.Add(6 * time.Minute)), reason: ReasonTimestampExpired},
		{name: "too far in the future", change: at(t0.Add(-6 * time.Minute)), reason: ReasonTimestampInFuture},
		{name: "timestamp missing", change: delHeader("X-Zm-Request-Timestamp"), reason: ReasonTimestampMissing},
		{name: "accepted with a millisecond timestamp", change: func(r *Request) {
			ms := ts + "000"
			r.Header.Set("X-Zm-Request-Timestamp", ms)
			r.Header.Set("X-Zm-Signature", "v0="+hex.EncodeToString(mac(sha256.New, []byte(secret), []byte("v0:"+ms+":"), body)))
		}},
	})
}

func TestVerifyMercadoPago(t *testing.T) {
	// Manifest and signature computed independently:
	// printf 'id:abc123;request-id:bb56a2f1-6aae-46ac-982e-9dcd3581d08e;ts:1742505638683;' | openssl dgst -sha256 -hmac mp-secret
	const secret = "mp-secret"
	body := []byte(`{"action":"payment.updated","data":{"id":"ABC123"},"id":12345,"type":"payment"}`)
	good := &Request{URL: mustURL(t, "https://example.com/hooks/mp?data.id=ABC123&type=payment"), Body: body, Now: t0, Header: http.Header{
		"X-Signature":  {"ts=1742505638683,v1=" + mercadoPagoVector},
		"X-Request-Id": {"bb56a2f1-6aae-46ac-982e-9dcd3581d08e"},
	}}
	v := mustNew(t, Config{Scheme: "mercadopago", Secrets: []string{secret}})
	res, err := v.Verify(good)
	if err != nil || res.EventID != "12345" {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	checkCases(t, v, good, []rejectCase{
		{name: "accepted"},
		{name: "data.id changed", change: func(r *Request) { r.URL = mustURL(t, "https://example.com/hooks/mp?data.id=ABC124&type=payment") }, reason: ReasonSignatureMismatch},
		{name: "request id changed", change: setHeader("X-Request-Id", "x"), reason: ReasonSignatureMismatch},
		{name: "missing", change: delHeader("X-Signature"), reason: ReasonSignatureMissing},
		{name: "no ts", change: setHeader("X-Signature", "v1="+mercadoPagoVector), reason: ReasonSignatureMalformed, status: 400},
	})
	t.Run("manifest leaves out absent parts", func(t *testing.T) {
		if got := string(mercadoPagoManifest("", "", "1")); got != "ts:1;" {
			t.Fatalf("manifest %q", got)
		}
	})
}

const mercadoPagoVector = "b2e66b50352227b2190d85a851728401620fb522c3245547f187d205f3225464"

func TestVerifyPagerDutyRotation(t *testing.T) {
	body := []byte(`{"event":{"id":"01DEN98U0Y5HEF0ND33QCQXNVZ","event_type":"incident.triggered"}}`)
	sig := func(key string) string { return "v1=" + hex.EncodeToString(mac(sha256.New, []byte(key), body)) }
	good := &Request{Body: body, Now: t0, Header: http.Header{"X-Pagerduty-Signature": {sig("old") + "," + sig("new")}, "X-Webhook-Id": {"wh-1"}}}
	v := mustNew(t, Config{Scheme: "pagerduty", Secrets: []string{"new"}})
	res, err := v.Verify(good)
	if err != nil || res.EventID != "wh-1" {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	checkCases(t, v, good, []rejectCase{
		{name: "accepted with the second of two signatures"},
		{name: "accepted with an unknown version around", change: setHeader("X-Pagerduty-Signature", "v2=abc,"+sig("new"))},
		{name: "body changed", change: appendBody, reason: ReasonSignatureMismatch},
		{name: "only the old secret's", change: setHeader("X-Pagerduty-Signature", sig("old")), reason: ReasonSignatureMismatch},
		{name: "missing", change: delHeader("X-Pagerduty-Signature"), reason: ReasonSignatureMissing},
		{name: "no v1", change: setHeader("X-Pagerduty-Signature", "v2=abcd"), reason: ReasonSignatureMalformed, status: 400},
	})
}

func TestVerifyLinearBodyTimestamp(t *testing.T) {
	c := Config{Scheme: "linear", Secrets: []string{"lin_wh_secret"}}
	v := mustNew(t, c)
	body := SampleBody("linear", t0)
	good := signed(t, c, body, "https://example.com/hooks/linear", t0)
	res, err := v.Verify(good)
	if err != nil || res.EventID != good.Header.Get("Linear-Delivery") {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	checkCases(t, v, good, []rejectCase{
		{name: "accepted"},
		{name: "accepted 59s late", change: at(t0.Add(59 * time.Second))},
		{name: "too old", change: at(t0.Add(61 * time.Second)), reason: ReasonTimestampExpired},
		{name: "too far in the future", change: at(t0.Add(-61 * time.Second)), reason: ReasonTimestampInFuture},
		{name: "body changed", change: appendBody, reason: ReasonSignatureMismatch},
		{name: "prefixed like GitHub", change: func(r *Request) { r.Header.Set("Linear-Signature", "sha256="+r.Header.Get("Linear-Signature")) }, reason: ReasonSignatureMalformed, status: 400},
	})
	t.Run("signed body without webhookTimestamp", func(t *testing.T) {
		r := signed(t, c, []byte(`{"type":"Issue"}`), "https://example.com/h", t0)
		_, err := v.Verify(r)
		wantReason(t, err, ReasonTimestampMissing, 0)
	})
}

func TestVerifyZendesk(t *testing.T) {
	// base64(HMAC-SHA256(timestamp + body)), as Zendesk documents.
	const secret = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
	body := []byte(`{"type":"zen:event-type:ticket.created"}`)
	ts := "2025-10-09T08:53:20Z"
	sig := base64.StdEncoding.EncodeToString(mac(sha256.New, []byte(secret), []byte(ts), body))
	good := &Request{Body: body, Now: t0, Header: http.Header{
		"X-Zendesk-Webhook-Signature": {sig}, "X-Zendesk-Webhook-Signature-Timestamp": {ts}, "X-Zendesk-Webhook-Invocation-Id": {"inv-1"}}}
	v := mustNew(t, Config{Scheme: "zendesk", Secrets: []string{secret}})
	res, err := v.Verify(good)
	if err != nil || res.EventID != "inv-1" {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	checkCases(t, v, good, []rejectCase{
		{name: "accepted"},
		{name: "accepted late: no window by default", change: at(t0.Add(48 * time.Hour))},
		{name: "body changed", change: appendBody, reason: ReasonSignatureMismatch},
		{name: "timestamp not RFC 3339", change: setHeader("X-Zendesk-Webhook-Signature-Timestamp", "1760000000"), reason: ReasonTimestampMalformed, status: 400},
	})
	t.Run("with a tolerance", func(t *testing.T) {
		v := mustNew(t, Config{Scheme: "zendesk", Secrets: []string{secret}, Tolerance: 10 * time.Minute})
		checkCases(t, v, good, []rejectCase{
			{name: "accepted within", change: at(t0.Add(9 * time.Minute))},
			{name: "too old", change: at(t0.Add(11 * time.Minute)), reason: ReasonTimestampExpired},
		})
	})
}

func TestVerifyBodyHMACSenders(t *testing.T) {
	body := []byte(`{"event_id":"01HOOK","id":"notif_1"}`)
	cases := []struct {
		scheme, header, value, eventID string
		extra                          http.Header
	}{
		{"typeform", "Typeform-Signature", "sha256=" + base64.StdEncoding.EncodeToString(mac(sha256.New, []byte("k"), body)), "01HOOK", nil},
		{"intercom", "X-Hub-Signature", "sha1=" + hex.EncodeToString(mac(sha1.New, []byte("k"), body)), "notif_1", nil},
		{"woocommerce", "X-Wc-Webhook-Signature", base64.StdEncoding.EncodeToString(mac(sha256.New, []byte("k"), body)), "d-1", http.Header{"X-Wc-Webhook-Delivery-Id": {"d-1"}}},
	}
	for _, tc := range cases {
		t.Run(tc.scheme, func(t *testing.T) {
			h := tc.extra.Clone()
			if h == nil {
				h = http.Header{}
			}
			h.Set(tc.header, tc.value)
			good := &Request{Body: body, Now: t0, Header: h}
			v := mustNew(t, Config{Scheme: tc.scheme, Secrets: []string{"k"}})
			res, err := v.Verify(good)
			if err != nil || res.EventID != tc.eventID || res.Scheme != tc.scheme {
				t.Fatalf("res=%+v err=%v", res, err)
			}
			checkCases(t, v, good, []rejectCase{
				{name: "body changed", change: appendBody, reason: ReasonSignatureMismatch},
				{name: "missing", change: delHeader(tc.header), reason: ReasonSignatureMissing},
			})
		})
	}
}

func TestVerifyCalendly(t *testing.T) {
	body := SampleBody("calendly", t0)
	ts := strconv.FormatInt(t0.Unix(), 10)
	good := &Request{Body: body, Now: t0, Header: http.Header{"Calendly-Webhook-Signature": {
		"t=" + ts + ",v1=" + hex.EncodeToString(mac(sha256.New, []byte("signing-key"), []byte(ts+"."), body))}}}
	v := mustNew(t, Config{Scheme: "calendly", Secrets: []string{"signing-key"}})
	checkCases(t, v, good, []rejectCase{
		{name: "accepted"},
		{name: "accepted 3 minutes late", change: at(t0.Add(3 * time.Minute))},
		{name: "too old", change: at(t0.Add(3*time.Minute + time.Second)), reason: ReasonTimestampExpired},
		{name: "too far in the future", change: at(t0.Add(-3*time.Minute - time.Second)), reason: ReasonTimestampInFuture},
		{name: "body changed", change: appendBody, reason: ReasonSignatureMismatch},
		{name: "Stripe's header instead", change: func(r *Request) {
			r.Header["Stripe-Signature"] = r.Header["Calendly-Webhook-Signature"]
			r.Header.Del("Calendly-Webhook-Signature")
		}, reason: ReasonSignatureMissing},
	})
}

func TestVerifyMailgun(t *testing.T) {
	// Mailgun's documented scheme, with a timestamp and token shaped like
	// its example; the signature is computed here.
	const key = "key-mailgun-signing"
	ts, token := "1529006854", "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
	sig := hex.EncodeToString(mac(sha256.New, []byte(key), []byte(ts+token)))
	body := []byte(`{"signature":{"timestamp":"` + ts + `","token":"` + token + `","signature":"` + sig + `"},"event-data":{"id":"CPgfbmQMTCKtHW6uIWtuVe","event":"delivered"}}`)
	good := &Request{Body: body, Now: t0, Header: http.Header{}}
	v := mustNew(t, Config{Scheme: "mailgun", Secrets: []string{key}})
	res, err := v.Verify(good)
	if err != nil || res.EventID != "CPgfbmQMTCKtHW6uIWtuVe" {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	checkCases(t, v, good, []rejectCase{
		{name: "accepted"},
		{name: "accepted as a legacy form", change: func(r *Request) {
			r.Body = []byte("timestamp=" + ts + "&token=" + token + "&signature=" + sig + "&event=delivered")
		}},
		{name: "token changed", change: func(r *Request) { r.Body = bytes.Replace(r.Body, []byte(token), []byte(strings.ToUpper(token)), 1) }, reason: ReasonSignatureMismatch},
		{name: "no signature", change: func(r *Request) { r.Body = []byte(`{"event-data":{}}`) }, reason: ReasonSignatureMissing},
	})
	t.Run("with a tolerance", func(t *testing.T) {
		v := mustNew(t, Config{Scheme: "mailgun", Secrets: []string{key}, Tolerance: time.Hour})
		_, err := v.Verify(good)
		wantReason(t, err, ReasonTimestampExpired, 0)
	})
	t.Run("Sign refuses a body it cannot sign", func(t *testing.T) {
		if _, err := Sign(Config{Scheme: "mailgun", Secrets: []string{key}}, body, mustURL(t, "https://e.com"), t0); err == nil {
			t.Fatal("signed")
		}
	})
}

func TestVerifyGitLabAndAsaasTokens(t *testing.T) {
	gl := mustNew(t, Config{Scheme: "gitlab", Secrets: []string{"glt"}})
	good := &Request{Body: []byte(`{}`), Now: t0, Header: http.Header{"X-Gitlab-Token": {"glt"}, "Idempotency-Key": {"idem"}, "X-Gitlab-Event-Uuid": {"uuid"}}}
	res, err := gl.Verify(good)
	if err != nil || res.EventID != "idem" {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	checkCases(t, gl, good, []rejectCase{
		{name: "accepted without Idempotency-Key", change: delHeader("Idempotency-Key")},
		{name: "wrong", change: setHeader("X-Gitlab-Token", "x"), reason: ReasonTokenMismatch},
		{name: "missing", change: delHeader("X-Gitlab-Token"), reason: ReasonTokenMissing},
	})
	r := good.clone()
	r.Header.Del("Idempotency-Key")
	// X-Gitlab-Event-UUID is shared by recursive webhooks, different
	// events: it must not become a dedupe key.
	if res, _ := gl.Verify(r); res.EventID != "" {
		t.Fatalf("id %q without Idempotency-Key, want none", res.EventID)
	}

	as := mustNew(t, Config{Scheme: "asaas", Secrets: []string{"tok"}})
	body := SampleBody("asaas", t0)
	res, err = as.Verify(&Request{Body: body, Now: t0, Header: http.Header{"Asaas-Access-Token": {"tok"}}})
	if err != nil || !strings.HasPrefix(res.EventID, "evt_") {
		t.Fatalf("res=%+v err=%v", res, err)
	}
}
