package verify

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"time"
)

// newShopify checks Shopify's X-Shopify-Hmac-Sha256: the base64
// HMAC-SHA256 of the body under the app's client secret. The event id is
// X-Shopify-Webhook-Id, the same on every retry of a delivery.
func newShopify(c Config) (Verifier, error) {
	return fixedHMAC(c, hmacVerifier{
		scheme:  "shopify",
		header:  "X-Shopify-Hmac-Sha256",
		hash:    sha256.New,
		enc:     base64Encoding,
		eventID: headerEventID("X-Shopify-Webhook-Id"),
		decorate: func(h http.Header, _ []byte) {
			h.Set("X-Shopify-Topic", "orders/create")
			h.Set("X-Shopify-Shop-Domain", "hookinbox-test.myshopify.com")
			h.Set("X-Shopify-Api-Version", "2025-10")
			h.Set("X-Shopify-Webhook-Id", newID())
			h.Set("X-Shopify-Event-Id", newID())
			h.Set("Content-Type", "application/json")
		},
	})
}

func shopifySample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"id":%d,"admin_graphql_api_id":"gid://shopify/Order/%d","email":"buyer@example.com","created_at":%q,"currency":"USD","total_price":"20.00","financial_status":"paid","name":"#1001","note":%q}`,
		now.UnixNano()%1e13, now.UnixNano()%1e13, now.Format(time.RFC3339), "hookinbox test "+id)
}
