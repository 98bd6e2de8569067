package verify

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	svix "github.com/svix/svix-webhooks/go"
)

// The test vector of the Standard Webhooks specification.
const (
	standardSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	standardID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	standardTS     = "1614265330"
	standardBody   = `{"test": 2432232314}`
	standardSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestVerifyStandardSpecVector(t *testing.T) {
	now := time.Unix(1614265330, 0)
	good := &Request{Method: "POST", Body: []byte(standardBody), Now: now, Header: http.Header{
		"Webhook-Id": {standardID}, "Webhook-Timestamp": {standardTS}, "Webhook-Signature": {standardSig},
	}}
	v := mustNew(t, Config{Scheme: "standard", Secrets: []string{"whsec_" + "AAAA", standardSecret}})
	res, err := v.Verify(good)
	if err != nil {
		t.Fatal(err)
	}
	if res.EventID != standardID || res.Scheme != "standard" {
		t.Fatalf("result = %+v", res)
	}
	svixHeaders := func(r *Request) {
		for _, n := range []string{"Id", "Timestamp", "Signature"} {
			r.Header.Set("Svix-"+n, r.Header.Get("Webhook-"+n))
			r.Header.Del("Webhook-" + n)
		}
	}
	checkCases(t, v, good, []rejectCase{
		{name: "accepted as signed"},
		{name: "accepted under svix-* names", change: svixHeaders},
		{name: "accepted among several signatures and versions", change: setHeader("Webhook-Signature", "v1a,AAAA v1,Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE= "+standardSig)},
		{name: "body changed", change: appendBody, reason: ReasonSignatureMismatch},
		{name: "id changed", change: setHeader("Webhook-Id", "msg_other"), reason: ReasonSignatureMismatch},
		{name: "timestamp changed", change: setHeader("Webhook-Timestamp", "1614265331"), reason: ReasonSignatureMismatch},
		{name: "too old", change: at(now.Add(5*time.Minute + time.Second)), reason: ReasonTimestampExpired},
		{name: "too far in the future", change: at(now.Add(-5*time.Minute - time.Second)), reason: ReasonTimestampInFuture},
		{name: "id missing", change: delHeader("Webhook-Id"), reason: ReasonIDMissing},
		{name: "timestamp missing", change: delHeader("Webhook-Timestamp"), reason: ReasonTimestampMissing},
		{name: "signature missing", change: delHeader("Webhook-Signature"), reason: ReasonSignatureMissing},
		{name: "timestamp not a number", change: setHeader("Webhook-Timestamp", "1614265330.5"), reason: ReasonTimestampMalformed, status: 400},
		{name: "signature list unparseable", change: setHeader("Webhook-Signature", "nonsense"), reason: ReasonSignatureMalformed, status: 400},
		{name: "only asymmetric signatures", change: setHeader("Webhook-Signature", "v1a,AAAA"), reason: ReasonSignatureMissing},
		{name: "v1 not base64", change: setHeader("Webhook-Signature", "v1,***"), reason: ReasonSignatureMalformed, status: 400},
	})
}

func TestVerifyStandardSignedBySDKs(t *testing.T) {
	body := SampleBody("standard", t0)
	v := mustNew(t, Config{Scheme: "standard", Secrets: []string{standardSecret}})
	ts := strconv.FormatInt(t0.Unix(), 10)

	sw, err := standardwebhooks.NewWebhook(standardSecret)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := sw.Sign("msg_sw", t0, body)
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(&Request{Body: body, Now: t0, Header: http.Header{
		"Webhook-Id": {"msg_sw"}, "Webhook-Timestamp": {ts}, "Webhook-Signature": {sig}}})
	wantReason(t, err, "", 0)

	sx, err := svix.NewWebhook(standardSecret)
	if err != nil {
		t.Fatal(err)
	}
	sig, err = sx.Sign("msg_svix", t0, body)
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(&Request{Body: body, Now: t0, Header: http.Header{
		"Svix-Id": {"msg_svix"}, "Svix-Timestamp": {ts}, "Svix-Signature": {sig}}})
	wantReason(t, err, "", 0)
}

func TestVerifyStandardOurSignatureAcceptedBySDKs(t *testing.T) {
	body := SampleBody("standard", time.Now())
	r := signed(t, Config{Scheme: "standard", Secrets: []string{standardSecret}}, body, "https://example.com/h", time.Now())
	sw, _ := standardwebhooks.NewWebhook(standardSecret)
	if err := sw.Verify(body, r.Header); err != nil {
		t.Errorf("standard-webhooks rejects our signature: %v", err)
	}
	sx, _ := svix.NewWebhook(standardSecret)
	if err := sx.Verify(body, r.Header); err != nil {
		t.Errorf("svix rejects our signature: %v", err)
	}
}

func TestNewStandardRejectsSecretThatIsNotBase64(t *testing.T) {
	_, err := New(Config{Scheme: "standard", Secrets: []string{"whsec_not*base64!"}})
	if err == nil {
		t.Fatal("accepted")
	}
}
