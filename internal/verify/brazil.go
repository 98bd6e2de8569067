package verify

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The Brazilian sales and payments platforms of the SPEC's second table:
// Kiwify, Eduzz and PagBank sign the body; Monetizze, Perfect Pay and Cakto
// repeat a static secret in it. (Hotmart and Hubla are in hotmart.go,
// Pagar.me in pagarme.go, Mercado Pago in mercadopago.go.)

// kiwifyVerifier checks Kiwify's query parameter signature: the lowercase
// hex HMAC-SHA1 of the raw body keyed with the webhook's token
// (docs.kiwify.com.br/api-reference/webhooks/receiving). Kiwify documents
// no event id, and its order id is the same on the approval and the
// refund: dedupe_key says where the id is, if anywhere.
type kiwifyVerifier struct {
	keys [][]byte
}

func newKiwify(c Config) (Verifier, error) {
	if err := needNo(c, allOptions...); err != nil {
		return nil, err
	}
	// checkSecrets has refused an empty token already: Kiwify would sign
	// with an empty key, which anyone can.
	return &kiwifyVerifier{keys: secretBytes(c.Secrets)}, nil
}

func (v *kiwifyVerifier) Verify(r *Request) (Result, error) {
	var got string
	if r.URL != nil {
		got = r.URL.Query().Get("signature")
	}
	if got == "" {
		return Result{}, unauthorized(ReasonSignatureMissing)
	}
	sig, err := hex.DecodeString(got)
	if err != nil || len(sig) != sha1.Size {
		return Result{}, malformed(ReasonSignatureMalformed)
	}
	if !anyKey(v.keys, sig, func(k []byte) []byte { return mac(sha1.New, k, r.Body) }) {
		return Result{}, unauthorized(ReasonSignatureMismatch)
	}
	return Result{Scheme: "kiwify"}, nil
}

func (v *kiwifyVerifier) sign(body []byte, target *url.URL, _ time.Time) (http.Header, error) {
	q := target.Query()
	q.Set("signature", hex.EncodeToString(mac(sha1.New, v.keys[0], body)))
	target.RawQuery = q.Encode()
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	return h, nil
}

func kiwifySample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"order_id":%q,"order_ref":"HKBX%d","order_status":"paid","product_type":"membership","payment_method":"pix","store_id":"hookinbox","webhook_event_type":"order_approved","created_at":%q,"approved_date":%q,"Product":{"product_id":"hookinbox-test","product_name":"hookinbox test product"},"Customer":{"full_name":"Test Buyer","email":"buyer@example.com"},"Commissions":{"charge_amount":9700,"currency":"BRL"}}`,
		id, now.UnixNano()%1e9, now.Format("2006-01-02 15:04"), now.Format("2006-01-02 15:04"))
}

// newEduzz checks Eduzz's x-signature: the hex HMAC-SHA256 of the raw body
// under the integration's secret key. Its envelope {id, event, data,
// sentDate} gives each event its own id, the dedupe key
// (github.com/eduzz/eduzz-webhook-docs).
func newEduzz(c Config) (Verifier, error) {
	return fixedHMAC(c, hmacVerifier{
		scheme:  "eduzz",
		header:  "X-Signature",
		hash:    sha256.New,
		enc:     hexEncoding,
		eventID: jsonEventID("id"),
		decorate: func(h http.Header, _ []byte) {
			h.Set("Content-Type", "application/json")
		},
	})
}

func eduzzSample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"id":%q,"event":"myeduzz.invoice_paid","data":{"id":"%d","status":"paid","buyer":{"name":"Test Buyer","email":"buyer@example.com"},"items":[{"productId":"hookinbox-test","name":"hookinbox test product"}],"paid":{"value":97,"currency":"BRL"}},"sentDate":%q}`,
		id, now.UnixNano()%1e9, now.UTC().Format(time.RFC3339))
}

// pagBankVerifier checks PagBank's x-authenticity-token: the hex SHA-256
// (a plain hash, not an HMAC) of the account's token, a hyphen and the raw
// body. PagBank's notifications carry the order, whose id is the same when
// it is paid and when it is refunded: dedupe_key says where the event id
// is, if anywhere.
type pagBankVerifier struct {
	tokens [][]byte
}

func newPagBank(c Config) (Verifier, error) {
	if err := needNo(c, allOptions...); err != nil {
		return nil, err
	}
	return &pagBankVerifier{tokens: secretBytes(c.Secrets)}, nil
}

func pagBankDigest(token, body []byte) []byte {
	h := sha256.New()
	h.Write(token)
	h.Write([]byte("-"))
	h.Write(body)
	return h.Sum(nil)
}

func (v *pagBankVerifier) Verify(r *Request) (Result, error) {
	got := strings.TrimSpace(r.Header.Get("X-Authenticity-Token"))
	if got == "" {
		return Result{}, unauthorized(ReasonSignatureMissing)
	}
	sig, err := hex.DecodeString(got)
	if err != nil || len(sig) != sha256.Size {
		return Result{}, malformed(ReasonSignatureMalformed)
	}
	if !anyKey(v.tokens, sig, func(k []byte) []byte { return pagBankDigest(k, r.Body) }) {
		return Result{}, unauthorized(ReasonSignatureMismatch)
	}
	return Result{Scheme: "pagbank"}, nil
}

func (v *pagBankVerifier) sign(body []byte, _ *url.URL, _ time.Time) (http.Header, error) {
	h := http.Header{}
	h.Set("X-Authenticity-Token", hex.EncodeToString(pagBankDigest(v.tokens[0], body)))
	h.Set("Content-Type", "application/json")
	return h, nil
}

func pagbankSample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"id":"ORDE_%s","reference_id":"hookinbox-test","created_at":%q,"customer":{"name":"Test Buyer","email":"buyer@example.com"},"items":[{"name":"hookinbox test product","quantity":1,"unit_amount":9700}],"charges":[{"id":"CHAR_%s","status":"PAID","paid_at":%q,"amount":{"value":9700,"currency":"BRL"},"payment_method":{"type":"PIX"}}]}`,
		strings.ToUpper(strings.ReplaceAll(id, "-", "")), now.Format(time.RFC3339), strings.ToUpper(strings.ReplaceAll(id, "-", ""))[:16], now.Format(time.RFC3339))
}

// bodyTokenVerifier checks a static secret that the sender repeats in a
// field of the body, a form or a JSON object. The body is delivered as it
// came; the field is shown redacted (BodySecrets).
type bodyTokenVerifier struct {
	scheme string
	field  string
	tokens [][]byte
	// header, when set, is checked first: Hotmart's current webhooks send
	// the hottok in a header, its v1 postbacks only in the body.
	header  string
	eventID func(r *Request) string
	// sample is the format signBody writes the field in.
	contentType string
}

func newBodyToken(scheme, field, contentType string, c Config) (Verifier, error) {
	if err := needNo(c, allOptions...); err != nil {
		return nil, err
	}
	return &bodyTokenVerifier{
		scheme: scheme, field: field, tokens: secretBytes(c.Secrets), contentType: contentType,
		eventID: func(*Request) string { return "" },
	}, nil
}

// newMonetizze: Monetizze posts a form whose field chave_unica is the
// account's unique key. Its postbacks name the sale, not the event: a
// refund repeats the sale's code, so there is no default dedupe key.
func newMonetizze(c Config) (Verifier, error) {
	return newBodyToken("monetizze", "chave_unica", "application/x-www-form-urlencoded", c)
}

// newPerfectPay: Perfect Pay posts JSON whose field token is the
// account's token.
func newPerfectPay(c Config) (Verifier, error) {
	return newBodyToken("perfectpay", "token", "application/json", c)
}

// newCakto: Cakto posts JSON whose field secret is the webhook's secret.
func newCakto(c Config) (Verifier, error) {
	return newBodyToken("cakto", "secret", "application/json", c)
}

func (v *bodyTokenVerifier) Verify(r *Request) (Result, error) {
	var got string
	if v.header != "" {
		got = r.Header.Get(v.header)
	}
	if got == "" {
		got, _ = BodyField(r.Body, v.field)
	}
	if err := checkToken(got, v.tokens); err != nil {
		return Result{}, err
	}
	return Result{Scheme: v.scheme, EventID: v.eventID(r)}, nil
}

// signBody adds the secret to the body, where the sender carries it.
func (v *bodyTokenVerifier) signBody(body []byte, _ *url.URL, _ time.Time) ([]byte, http.Header, error) {
	h := http.Header{}
	if v.header != "" {
		h.Set(v.header, string(v.tokens[0]))
		h.Set("Content-Type", "application/json")
		return body, h, nil
	}
	out := withField(body, v.field, string(v.tokens[0]))
	if FormatOf(out) == BodyOther {
		return nil, nil, errors.New("the sample body has no place for the secret")
	}
	h.Set("Content-Type", v.contentType)
	return out, h, nil
}

// sign serves Sign for a body that already carries the secret.
func (v *bodyTokenVerifier) sign(body []byte, target *url.URL, now time.Time) (http.Header, error) {
	_, h, err := v.signBody(body, target, now)
	return h, err
}

func monetizzeSample(id string, now time.Time) []byte {
	q := url.Values{}
	q.Set("tipoPostback[codigo]", "2")
	q.Set("tipoPostback[descricao]", "Finalizada / Aprovada")
	q.Set("venda[codigo]", fmt.Sprint(now.UnixNano()%1e8))
	q.Set("venda[status]", "Finalizada")
	q.Set("venda[dataInicio]", now.Format(time.DateTime))
	q.Set("venda[valor]", "97.00")
	q.Set("produto[codigo]", "100000")
	q.Set("produto[nome]", "hookinbox test product")
	q.Set("comprador[email]", "buyer@example.com")
	q.Set("hookinbox_test_id", id)
	return []byte(q.Encode())
}

func perfectpaySample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"code":"PPCPMTB%d","sale_amount":97,"currency_enum":1,"payment_type_enum":4,"sale_status_enum":2,"sale_status_detail":"approved","date_created":%q,"date_approved":%q,"product":{"code":"PPPBHKBX","name":"hookinbox test product"},"customer":{"full_name":"Test Buyer","email":"buyer@example.com"},"hookinbox_test_id":%q}`,
		now.UnixNano()%1e8, now.Format(time.DateTime), now.Format(time.DateTime), id)
}

func caktoSample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"event":"purchase_approved","data":{"id":%q,"refId":"hkbx%d","status":"paid","amount":97,"paymentMethod":"pix","createdAt":%q,"customer":{"name":"Test Buyer","email":"buyer@example.com"},"product":{"name":"hookinbox test product"}}}`,
		id, now.UnixNano()%1e8, now.UTC().Format(time.RFC3339))
}
