package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// mercadoPagoVerifier checks Mercado Pago's x-signature header,
// "ts=<ts>,v1=<hex>", where v1 is the hex HMAC-SHA256, under the
// application's webhook secret, of the manifest
//
//	id:<data.id>;request-id:<x-request-id>;ts:<ts>;
//
// data.id is the query parameter Mercado Pago adds to the notification
// URL (lower-cased when alphanumeric), x-request-id a request header; a
// part whose value is absent is left out of the manifest. Mercado Pago
// states no replay window, so none is checked unless tolerance is set.
// The event id is the notification's "id".
type mercadoPagoVerifier struct {
	keys   [][]byte
	window time.Duration
	url    string
}

func newMercadoPago(c Config) (Verifier, error) {
	if err := only(c, "url"); err != nil {
		return nil, err
	}
	return &mercadoPagoVerifier{keys: secretBytes(c.Secrets), window: window(c, 0), url: c.URL}, nil
}

func (v *mercadoPagoVerifier) Verify(r *Request) (Result, error) {
	ts, sigs, rej := parseMercadoPagoSignature(r.Header.Get("X-Signature"))
	if rej != nil {
		return Result{}, rej
	}
	manifest := mercadoPagoManifest(v.dataID(r.URL), r.Header.Get("X-Request-Id"), ts)
	if !anySignature(v.keys, sigs, func(k []byte) []byte { return mac(sha256.New, k, manifest) }) {
		return Result{}, unauthorized(ReasonSignatureMismatch)
	}
	if v.window > 0 {
		signed, _ := unixSecondsOrMillis(ts)
		if err := checkTime(signed, r.Now, v.window); err != nil {
			return Result{}, err
		}
	}
	return Result{Scheme: "mercadopago", EventID: KeyFromJSON(r.Body, "id")}, nil
}

// parseMercadoPagoSignature splits x-signature into ts and its v1
// signatures.
func parseMercadoPagoSignature(header string) (string, [][]byte, *Rejection) {
	return parseSignatureList(header, ",", "ts", "v1")
}

// dataID is the data.id query parameter of the URL Mercado Pago called.
func (v *mercadoPagoVerifier) dataID(req *url.URL) string {
	u, err := url.Parse(signedURL(v.url, req))
	if err != nil {
		return ""
	}
	id := u.Query().Get("data.id")
	if isAlphanumeric(id) {
		id = strings.ToLower(id)
	}
	return id
}

func isAlphanumeric(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return s != ""
}

func mercadoPagoManifest(dataID, requestID, ts string) []byte {
	var b strings.Builder
	if dataID != "" {
		b.WriteString("id:" + dataID + ";")
	}
	if requestID != "" {
		b.WriteString("request-id:" + requestID + ";")
	}
	b.WriteString("ts:" + ts + ";")
	return []byte(b.String())
}

// sign adds data.id and type to target's query, as Mercado Pago does, and
// signs.
func (v *mercadoPagoVerifier) sign(body []byte, target *url.URL, now time.Time) (http.Header, error) {
	q := target.Query()
	if id := KeyFromJSON(body, "data.id"); id != "" {
		q.Set("data.id", id)
	}
	if typ := KeyFromJSON(body, "type"); typ != "" {
		q.Set("type", typ)
	}
	target.RawQuery = q.Encode()
	ts := strconv.FormatInt(now.UnixMilli(), 10)
	requestID := newID()
	manifest := mercadoPagoManifest(v.dataID(target), requestID, ts)
	h := http.Header{}
	h.Set("X-Signature", "ts="+ts+",v1="+hex.EncodeToString(mac(sha256.New, v.keys[0], manifest)))
	h.Set("X-Request-Id", requestID)
	h.Set("Content-Type", "application/json")
	return h, nil
}

func mercadopagoSample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"action":"payment.updated","api_version":"v1","data":{"id":"%d"},"date_created":%q,"id":%d,"live_mode":false,"type":"payment","user_id":"123456789","hookinbox_test_id":%q}`,
		now.UnixNano()%1e11, now.UTC().Format("2006-01-02T15:04:05Z"), now.UnixNano()%1e12, id)
}
