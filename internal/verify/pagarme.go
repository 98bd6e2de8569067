package verify

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// KeySet finds a sender's public key by its id (a JWKS's kid). It is the
// caller's: hookinbox's Caddy module fetches the sender's JWKS, caches it
// and fetches it again for an id it does not hold.
type KeySet interface {
	// Key returns the key with id kid, or nil when there is none.
	Key(kid string) *rsa.PublicKey
}

// ReasonKeyUnknown: the signature names a key the sender's key set does
// not hold (or the key set could not be fetched).
const ReasonKeyUnknown = "key_unknown"

// pagarmeVerifier checks Pagar.me's (v5) X-Webhook-Asymmetric-Signature,
// "alg=RS256; kid=<key id>; signature=<base64url>": an RSA PKCS #1 v1.5
// signature of the SHA-256 of the raw body, made with the Pagar.me key
// that kid names in its JWKS. Every hook has its own id (hook_…), the
// body's "id": the dedupe key.
type pagarmeVerifier struct {
	keys KeySet
}

func newPagarme(c Config) (Verifier, error) {
	if err := only(c, "jwks"); err != nil {
		return nil, err
	}
	if c.Keys == nil {
		return nil, errors.New("no key set: jwks must name Pagar.me's JWKS URL")
	}
	return &pagarmeVerifier{keys: c.Keys}, nil
}

func (v *pagarmeVerifier) Verify(r *Request) (Result, error) {
	header := r.Header.Get("X-Webhook-Asymmetric-Signature")
	if header == "" {
		return Result{}, unauthorized(ReasonSignatureMissing)
	}
	kid, sig, rej := ParsePagarmeSignature(header)
	if rej != nil {
		return Result{}, rej
	}
	key := v.keys.Key(kid)
	if key == nil {
		return Result{}, unauthorized(ReasonKeyUnknown)
	}
	digest := sha256.Sum256(r.Body)
	if rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig) != nil {
		return Result{}, unauthorized(ReasonSignatureMismatch)
	}
	return Result{Scheme: "pagarme", EventID: KeyFromJSON(r.Body, "id")}, nil
}

// ParsePagarmeSignature reads "alg=RS256; kid=…; signature=…" (in any
// order) into the key id and the signature's bytes.
func ParsePagarmeSignature(header string) (kid string, sig []byte, rej *Rejection) {
	var alg, encoded string
	for part := range strings.SplitSeq(header, ";") {
		name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "alg":
			alg = strings.TrimSpace(value)
		case "kid":
			kid = strings.TrimSpace(value)
		case "signature":
			// base64url may keep its = padding, which Cut left in value.
			encoded = strings.TrimSpace(value)
		}
	}
	if alg != "RS256" || kid == "" || encoded == "" {
		return "", nil, malformed(ReasonSignatureMalformed)
	}
	sig, err := decodeBase64URL(encoded)
	if err != nil || len(sig) == 0 {
		return "", nil, malformed(ReasonSignatureMalformed)
	}
	return kid, sig, nil
}

// decodeBase64URL decodes base64url with or without padding, and
// tolerates the standard alphabet.
func decodeBase64URL(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	s = strings.NewReplacer("+", "-", "/", "_").Replace(s)
	return base64.RawURLEncoding.DecodeString(s)
}

// ParseJWKS reads a JSON Web Key Set (RFC 7517) and returns its RSA
// signing keys by kid. Keys of another type, for encryption, for another
// algorithm than RS256, without a kid, or smaller than 2048 bits are left
// out.
func ParseJWKS(data []byte) (map[string]*rsa.PublicKey, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			Alg string `json:"alg"`
			N   string `json:"n"`
			E   string `json:"e"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("not a JWKS: %v", err)
	}
	keys := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "RSA" || k.Kid == "" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "RS256") {
			continue
		}
		n, err1 := decodeBase64URL(k.N)
		e, err2 := decodeBase64URL(k.E)
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
			continue
		}
		exp := int(new(big.Int).SetBytes(e).Int64())
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}
		if pub.N.BitLen() < 2048 || exp < 3 || exp%2 == 0 {
			continue
		}
		if _, dup := keys[k.Kid]; !dup {
			keys[k.Kid] = pub
		}
	}
	return keys, nil
}

// JWKThumbprint is the RFC 7638 thumbprint of an RSA public key, base64url:
// the kid send-test signs with, since only the private key is given.
func JWKThumbprint(pub *rsa.PublicKey) string {
	e := big.NewInt(int64(pub.E)).Bytes()
	canonical := fmt.Sprintf(`{"e":"%s","kty":"RSA","n":"%s"}`,
		base64.RawURLEncoding.EncodeToString(e), base64.RawURLEncoding.EncodeToString(pub.N.Bytes()))
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// signPagarme signs as Pagar.me does, for send-test. Only Pagar.me holds
// its private key, so the secret must be an RSA private key of your own
// (PEM, PKCS #1 or PKCS #8) whose public key is in the JWKS the inbox is
// configured with (jwks); the kid is the key's RFC 7638 thumbprint.
func signPagarme(c Config, body []byte, _ *url.URL, _ time.Time) (http.Header, error) {
	key, err := rsaPrivateKey(c.Secrets[0])
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(body)
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
	if err != nil {
		return nil, fmt.Errorf("signing: %v", err)
	}
	h := http.Header{}
	h.Set("X-Webhook-Asymmetric-Signature", "alg=RS256; kid="+JWKThumbprint(&key.PublicKey)+"; signature="+base64.RawURLEncoding.EncodeToString(sig))
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "Pagar.me-Webhook")
	return h, nil
}

var errNotRSAKey = errors.New("pagarme verifies with Pagar.me's public keys, which cannot sign; to sign a test event, give an RSA private key (PEM) whose public key is in the JWKS the inbox uses")

func rsaPrivateKey(s string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(strings.TrimSpace(s)))
	if block == nil {
		return nil, errNotRSAKey
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if rk, ok := k.(*rsa.PrivateKey); err == nil && ok {
		return rk, nil
	}
	return nil, errNotRSAKey
}

func pagarmeSample(id string, now time.Time) []byte {
	compact := strings.ReplaceAll(id, "-", "")
	return fmt.Appendf(nil, `{"id":"hook_%s","account":{"id":"acc_hookinboxtest0001","name":"hookinbox test"},"type":"order.paid","created_at":%q,"data":{"id":"or_%s","code":"HKBX%d","amount":9700,"currency":"BRL","status":"paid","customer":{"name":"Test Buyer","email":"buyer@example.com"},"charges":[{"id":"ch_%s","status":"paid","payment_method":"pix","amount":9700}]}}`,
		compact[:16], now.UTC().Format("2006-01-02T15:04:05Z"), compact[16:], now.UnixNano()%1e6, compact[:16])
}
