package verify

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestVerifyPaddle(t *testing.T) {
	// Signature computed independently with openssl dgst -sha256 -hmac.
	const (
		secret = "pdl_ntfset_01gkpjp8bkm3tm53kdgkx6sms7_6h3qd3uFSi9YCD3OLYAShQI90XTI5vEI"
		body   = `{"event_id":"evt_01gks14ge726w50ch2tmaw2a1x","event_type":"subscription.created"}`
		h1     = "c3c5bc3f2c6af4416c3d95d48580aef5554e8561ed235366570cbf58330d6a40"
	)
	now := time.Unix(1671552777, 0)
	good := &Request{Method: "POST", Body: []byte(body), Now: now, Header: http.Header{
		"Paddle-Signature": {"ts=1671552777;h1=" + h1},
	}}
	v := mustNew(t, Config{Scheme: "paddle", Secrets: []string{"pdl_ntfset_old", secret}})
	res, err := v.Verify(good)
	if err != nil || res.EventID != "evt_01gks14ge726w50ch2tmaw2a1x" || res.Scheme != "paddle" {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	other := strings.Repeat("ab", 32)
	checkCases(t, v, good, []rejectCase{
		{name: "accepted as signed"},
		{name: "accepted with a second h1 during rotation", change: setHeader("Paddle-Signature", "ts=1671552777;h1="+other+";h1="+h1)},
		{name: "body changed", change: appendBody, reason: ReasonSignatureMismatch},
		{name: "ts changed", change: setHeader("Paddle-Signature", "ts=1671552778;h1="+h1), reason: ReasonSignatureMismatch},
		{name: "too old", change: at(now.Add(5*time.Minute + time.Second)), reason: ReasonTimestampExpired},
		{name: "too far in the future", change: at(now.Add(-5*time.Minute - time.Second)), reason: ReasonTimestampInFuture},
		{name: "header missing", change: delHeader("Paddle-Signature"), reason: ReasonSignatureMissing},
		{name: "no h1", change: setHeader("Paddle-Signature", "ts=1671552777"), reason: ReasonSignatureMissing},
		{name: "no ts", change: setHeader("Paddle-Signature", "h1="+h1), reason: ReasonSignatureMalformed, status: 400},
		{name: "ts not a number", change: setHeader("Paddle-Signature", "ts=x;h1="+h1), reason: ReasonTimestampMalformed, status: 400},
		{name: "h1 not hex", change: setHeader("Paddle-Signature", "ts=1671552777;h1=zz"), reason: ReasonSignatureMalformed, status: 400},
		{name: "comma instead of semicolon", change: setHeader("Paddle-Signature", "ts=1671552777,h1="+h1), reason: ReasonTimestampMalformed, status: 400},
	})
}
