package verify

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"time"
)

// WooCommerce and Square, store and point-of-sale platforms, sign with a
// base64 HMAC-SHA256.

// newWooCommerce checks X-WC-Webhook-Signature: the base64 HMAC-SHA256 of
// the body under the webhook's secret. The event id is
// X-WC-Webhook-Delivery-ID.
func newWooCommerce(c Config) (Verifier, error) {
	return fixedHMAC(c, hmacVerifier{
		scheme:  "woocommerce",
		header:  "X-WC-Webhook-Signature",
		hash:    sha256.New,
		enc:     base64Encoding,
		eventID: headerEventID("X-WC-Webhook-Delivery-ID"),
		decorate: func(h http.Header, _ []byte) {
			h.Set("X-WC-Webhook-Source", "https://shop.example.com/")
			h.Set("X-WC-Webhook-Topic", "order.created")
			h.Set("X-WC-Webhook-Resource", "order")
			h.Set("X-WC-Webhook-Event", "created")
			h.Set("X-WC-Webhook-ID", "1")
			h.Set("X-WC-Webhook-Delivery-ID", newID())
			h.Set("Content-Type", "application/json")
		},
	})
}

func woocommerceSample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"id":%d,"status":"processing","currency":"USD","total":"20.00","date_created_gmt":%q,"billing":{"email":"buyer@example.com"},"customer_note":%q}`,
		now.UnixNano()%1e9, now.UTC().Format("2006-01-02T15:04:05"), "hookinbox test "+id)
}

// newSquare checks x-square-hmacsha256-signature: the base64 HMAC-SHA256
// of the notification URL followed by the body, under the subscription's
// signature key. The URL is the one configured in Square; set Config.URL
// when requests reach Caddy at another. The event id is the body's
// event_id.
func newSquare(c Config) (Verifier, error) {
	tmpl, _ := parseTemplate("{url}{body}")
	return fixedHMAC(c, hmacVerifier{
		scheme:  "square",
		header:  "X-Square-Hmacsha256-Signature",
		hash:    sha256.New,
		enc:     base64Encoding,
		content: tmpl,
		eventID: jsonEventID("event_id"),
		decorate: func(h http.Header, _ []byte) {
			h.Set("Square-Environment", "Sandbox")
			h.Set("Content-Type", "application/json")
		},
	}, "url")
}

func squareSample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"merchant_id":"MLEFBHHSJGVHD","type":"payment.updated","event_id":%q,"created_at":%q,"data":{"type":"payment","id":"KkAkhdMsgzn59SM8A89WgKwekxLZY","object":{"payment":{"id":"KkAkhdMsgzn59SM8A89WgKwekxLZY","status":"COMPLETED","amount_money":{"amount":2000,"currency":"USD"}}}}}`,
		id, now.UTC().Format("2006-01-02T15:04:05.000000000Z"))
}
