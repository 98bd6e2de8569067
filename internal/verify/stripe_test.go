package verify

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v85/webhook"
)

const stripeSecret = "whsec_test_hookinbox_1234567890"

func TestVerifyStripeSignedBySDK(t *testing.T) {
	body := SampleBody("stripe", t0)
	p := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: stripeSecret, Timestamp: t0})
	good := &Request{Method: "POST", Header: http.Header{"Stripe-Signature": {p.Header}}, Body: body, Now: t0}
	v := mustNew(t, Config{Scheme: "stripe", Secrets: []string{"whsec_old", stripeSecret}})

	res, err := v.Verify(good)
	if err != nil {
		t.Fatal(err)
	}
	if res.Scheme != "stripe" || res.EventID != KeyFromJSON(body, "id") || !strings.HasPrefix(res.EventID, "evt_") {
		t.Fatalf("result = %+v", res)
	}

	old := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: "whsec_old", Timestamp: t0})
	v1Only := strings.SplitN(old.Header, ",", 2)[1]
	checkCases(t, v, good, []rejectCase{
		{name: "accepted as signed"},
		{name: "accepted within tolerance, late", change: at(t0.Add(5 * time.Minute))},
		{name: "accepted within tolerance, early", change: at(t0.Add(-5 * time.Minute))},
		{name: "accepted with a second v1 from a rolled secret", change: func(r *Request) {
			r.Header.Set("Stripe-Signature", p.Header+","+v1Only)
		}},
		{name: "accepted when the matching v1 comes second", change: func(r *Request) {
			r.Header.Set("Stripe-Signature", "t="+strings.TrimPrefix(strings.SplitN(p.Header, ",", 2)[0], "t=")+",v1="+strings.Repeat("00", 32)+","+strings.SplitN(p.Header, ",", 2)[1])
		}},
		{name: "accepted with a v0 and unknown keys around", change: func(r *Request) {
			r.Header.Set("Stripe-Signature", p.Header+",v0=abc,x=y")
		}},
		{name: "body changed", change: appendBody, reason: ReasonSignatureMismatch},
		{name: "too old", change: at(t0.Add(5*time.Minute + time.Second)), reason: ReasonTimestampExpired},
		{name: "too far in the future", change: at(t0.Add(-5*time.Minute - time.Second)), reason: ReasonTimestampInFuture},
		{name: "header missing", change: delHeader("Stripe-Signature"), reason: ReasonSignatureMissing},
		{name: "timestamp changed", change: func(r *Request) {
			r.Header.Set("Stripe-Signature", strings.Replace(p.Header, "t=", "t=1", 1))
		}, reason: ReasonSignatureMismatch},
		{name: "no v1", change: setHeader("Stripe-Signature", "t=1760000000,v0=abcd"), reason: ReasonSignatureMissing},
		{name: "no t", change: setHeader("Stripe-Signature", "v1="+strings.Repeat("ab", 32)), reason: ReasonSignatureMalformed, status: 400},
		{name: "t not a number", change: setHeader("Stripe-Signature", "t=soon,v1="+strings.Repeat("ab", 32)), reason: ReasonTimestampMalformed, status: 400},
		{name: "v1 not hex", change: setHeader("Stripe-Signature", "t=1760000000,v1=zz"), reason: ReasonSignatureMalformed, status: 400},
		{name: "pair without =", change: setHeader("Stripe-Signature", "garbage"), reason: ReasonSignatureMalformed, status: 400},
	})

	t.Run("signed with a secret not configured", func(t *testing.T) {
		other := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: "whsec_other", Timestamp: t0})
		_, err := v.Verify(&Request{Header: http.Header{"Stripe-Signature": {other.Header}}, Body: body, Now: t0})
		wantReason(t, err, ReasonSignatureMismatch, 0)
	})
	t.Run("tolerance configured longer", func(t *testing.T) {
		v := mustNew(t, Config{Scheme: "stripe", Secrets: []string{stripeSecret}, Tolerance: time.Hour})
		r := good.clone()
		r.Now = t0.Add(59 * time.Minute)
		_, err := v.Verify(r)
		wantReason(t, err, "", 0)
	})
	t.Run("tolerance turned off", func(t *testing.T) {
		v := mustNew(t, Config{Scheme: "stripe", Secrets: []string{stripeSecret}, Tolerance: -1})
		r := good.clone()
		r.Now = t0.Add(1000 * time.Hour)
		_, err := v.Verify(r)
		wantReason(t, err, "", 0)
	})
}

func TestVerifyStripeOurSignatureAcceptedBySDK(t *testing.T) {
	body := SampleBody("stripe", t0)
	c := Config{Scheme: "stripe", Secrets: []string{stripeSecret}}
	r := signed(t, c, body, "https://example.com/hooks/stripe", time.Now())
	if err := webhook.ValidatePayload(body, r.Header.Get("Stripe-Signature"), stripeSecret); err != nil {
		t.Fatalf("stripe-go rejects our signature: %v", err)
	}
	if _, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), stripeSecret, webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true}); err != nil {
		t.Fatalf("stripe-go cannot construct our sample event: %v", err)
	}
}
