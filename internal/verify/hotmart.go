package verify

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Hotmart and Hubla, Brazilian sales platforms, and Asaas, a Brazilian
// payments platform, send a static token in a header on every webhook.

// newHotmart: Hotmart's webhook 2.0 sends the account's hottok in
// X-HOTMART-HOTTOK; the event's own id is the body's "id". Its v1
// postbacks send no header but carry the hottok in the body, a form or
// JSON, and have no event id.
func newHotmart(c Config) (Verifier, error) {
	if err := needNo(c, allOptions...); err != nil {
		return nil, err
	}
	return &bodyTokenVerifier{
		scheme: "hotmart", header: "X-Hotmart-Hottok", field: "hottok",
		tokens: secretBytes(c.Secrets), eventID: jsonEventID("id"),
	}, nil
}

// newHubla: Hubla sends the webhook token in x-hubla-token and a key that
// stays the same across redeliveries in x-hubla-idempotency.
func newHubla(c Config) (Verifier, error) {
	return headerToken("hubla", "X-Hubla-Token", c, headerEventID("X-Hubla-Idempotency"),
		func(h http.Header, _ []byte) { h.Set("X-Hubla-Idempotency", newID()) })
}

func hotmartSample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"id":%q,"creation_date":%d,"event":"PURCHASE_APPROVED","version":"2.0.0","data":{"product":{"id":0,"name":"hookinbox test product"},"buyer":{"email":"buyer@example.com","name":"Test Buyer"},"purchase":{"transaction":"HP%d","status":"APPROVED","price":{"value":97.0,"currency_value":"BRL"}}}}`,
		id, now.UnixMilli(), now.UnixNano()%1e14)
}

func hublaSample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"type":"invoice.payment_succeeded","version":"2.0.0","event":{"product":{"id":"hookinbox-test","name":"hookinbox test product"},"invoice":{"id":%q,"status":"paid","amount":{"totalCents":9700},"paidAt":%q},"user":{"email":"buyer@example.com"}}}`,
		id, now.UTC().Format(time.RFC3339))
}

// newAsaas: Asaas sends the webhook's authentication token in
// asaas-access-token; the event's id (evt_…) is the body's "id", and Asaas
// may deliver the same event more than once.
func newAsaas(c Config) (Verifier, error) {
	return headerToken("asaas", "Asaas-Access-Token", c, jsonEventID("id"),
		func(h http.Header, _ []byte) { h.Set("Content-Type", "application/json") })
}

func asaasSample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"id":"evt_%s","event":"PAYMENT_RECEIVED","dateCreated":%q,"payment":{"object":"payment","id":"pay_%d","customer":"cus_000005219613","value":100.0,"netValue":94.51,"billingType":"PIX","status":"RECEIVED","description":"hookinbox test"}}`,
		strings.ReplaceAll(id, "-", ""), now.Format("2006-01-02 15:04:05"), now.UnixNano()%1e12)
}
