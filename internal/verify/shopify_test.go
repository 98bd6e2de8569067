package verify

import (
	"net/http"
	"testing"
)

const shopifyVector = "NqcMFqpD9dzRa5H+M4QPyKeHcMF2sF7HZcNvvr5kf/E="

func TestVerifyShopify(t *testing.T) {
	// Signature computed independently: printf '%s' "$body" | openssl dgst -sha256 -hmac hush -binary | base64
	const body = `{"id":820982911946154508,"email":"jon@example.com","closed_at":null}`
	good := &Request{Method: "POST", Body: []byte(body), Now: t0, Header: http.Header{
		"X-Shopify-Hmac-Sha256": {shopifyVector},
		"X-Shopify-Webhook-Id":  {"b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"},
	}}
	v := mustNew(t, Config{Scheme: "shopify", Secrets: []string{"hush"}})
	res, err := v.Verify(good)
	if err != nil || res.EventID != "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043" {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	checkCases(t, v, good, []rejectCase{
		{name: "accepted as signed"},
		{name: "body changed", change: appendBody, reason: ReasonSignatureMismatch},
		{name: "header missing", change: delHeader("X-Shopify-Hmac-Sha256"), reason: ReasonSignatureMissing},
		{name: "hex instead of base64", change: setHeader("X-Shopify-Hmac-Sha256", "zz"+shopifyVector[2:]), reason: ReasonSignatureMismatch},
		{name: "not base64", change: setHeader("X-Shopify-Hmac-Sha256", "%%%"), reason: ReasonSignatureMalformed, status: 400},
	})
}
