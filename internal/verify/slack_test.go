package verify

import (
	"crypto/sha256"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

// The example of Slack's "Verifying requests from Slack".
const (
	slackDocSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	slackDocTS     = "1531420618"
	slackDocBody   = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	slackDocSig    = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
)

func TestVerifySlackDocExample(t *testing.T) {
	now := time.Unix(1531420618, 0)
	good := &Request{Method: "POST", Body: []byte(slackDocBody), Now: now, Header: http.Header{
		"X-Slack-Signature": {slackDocSig}, "X-Slack-Request-Timestamp": {slackDocTS},
	}}
	v := mustNew(t, Config{Scheme: "slack", Secrets: []string{slackDocSecret}})
	checkCases(t, v, good, []rejectCase{
		{name: "accepted as signed"},
		{name: "body changed", change: appendBody, reason: ReasonSignatureMismatch},
		{name: "timestamp changed", change: setHeader("X-Slack-Request-Timestamp", "1531420619"), reason: ReasonSignatureMismatch},
		{name: "too old", change: at(now.Add(6 * time.Minute)), reason: ReasonTimestampExpired},
		{name: "too far in the future", change: at(now.Add(-6 * time.Minute)), reason: ReasonTimestampInFuture},
		{name: "signature missing", change: delHeader("X-Slack-Signature"), reason: ReasonSignatureMissing},
		{name: "timestamp missing", change: delHeader("X-Slack-Request-Timestamp"), reason: ReasonTimestampMissing},
		{name: "timestamp not a number", change: setHeader("X-Slack-Request-Timestamp", "-1531420618"), reason: ReasonTimestampMalformed, status: 400},
		{name: "version prefix missing", change: setHeader("X-Slack-Signature", slackDocSig[3:]), reason: ReasonSignatureMalformed, status: 400},
		{name: "not hex", change: setHeader("X-Slack-Signature", "v0=nothex"), reason: ReasonSignatureMalformed, status: 400},
	})
}

func TestVerifySlackWithSlackGo(t *testing.T) {
	const secret = "slack-signing-secret"
	c := Config{Scheme: "slack", Secrets: []string{secret}}
	body := SampleBody("slack", time.Now())
	r := signed(t, c, body, "https://example.com/hooks/slack", time.Now())

	sv, err := slack.NewSecretsVerifier(r.Header, secret)
	if err != nil {
		t.Fatal(err)
	}
	sv.Write(body)
	if err := sv.Ensure(); err != nil {
		t.Fatalf("slack-go rejects our signature: %v", err)
	}
	res, err := mustNew(t, c).Verify(r)
	if err != nil || res.EventID == "" || res.EventID != KeyFromJSON(body, "event_id") || res.Handshake != nil {
		t.Fatalf("res=%+v err=%v", res, err)
	}
}

func TestVerifySlackURLVerification(t *testing.T) {
	const secret = "slack-signing-secret"
	v := mustNew(t, Config{Scheme: "slack", Secrets: []string{secret}})
	body := []byte(`{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`)
	ts := strconv.FormatInt(t0.Unix(), 10)
	sig := "v0=" + (hexEncoding).encode(mac(sha256.New, []byte(secret), []byte("v0:"+ts+":"), body))
	r := &Request{Body: body, Now: t0, Header: http.Header{"X-Slack-Signature": {sig}, "X-Slack-Request-Timestamp": {ts}}}

	res, err := v.Verify(r)
	if err != nil {
		t.Fatal(err)
	}
	if res.Handshake == nil || string(res.Handshake.Body) != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" || res.Handshake.Status != 200 {
		t.Fatalf("handshake = %+v", res.Handshake)
	}

	t.Run("unsigned challenge is not answered", func(t *testing.T) {
		r := r.clone()
		r.Header.Set("X-Slack-Signature", "v0="+strings.Repeat("00", 32))
		_, err := v.Verify(r)
		wantReason(t, err, ReasonSignatureMismatch, 0)
	})
}
