package verify

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// discordVerifier checks Discord's interaction signatures: X-Signature-Ed25519
// is the hex Ed25519 signature of X-Signature-Timestamp followed by the
// body, made with Discord's private key; the secret is the application's
// public key, in hex, from the developer portal. Discord states no replay
// window, so none is checked unless tolerance is set. A PING (type 1) is
// answered at once with a PONG, once its signature checks out. The event
// id is the interaction's "id".
type discordVerifier struct {
	keys   []ed25519.PublicKey
	window time.Duration
}

func newDiscord(c Config) (Verifier, error) {
	if err := needNo(c, allOptions...); err != nil {
		return nil, err
	}
	v := &discordVerifier{window: window(c, 0)}
	for i, s := range c.Secrets {
		k, err := hex.DecodeString(strings.TrimSpace(s))
		if err != nil || len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("secret %d is not a Discord public key (64 hex digits)", i+1)
		}
		v.keys = append(v.keys, ed25519.PublicKey(k))
	}
	return v, nil
}

func (v *discordVerifier) Verify(r *Request) (Result, error) {
	header := r.Header.Get("X-Signature-Ed25519")
	ts := r.Header.Get("X-Signature-Timestamp")
	switch {
	case header == "":
		return Result{}, unauthorized(ReasonSignatureMissing)
	case ts == "":
		return Result{}, unauthorized(ReasonTimestampMissing)
	}
	sig, err := hex.DecodeString(header)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Result{}, malformed(ReasonSignatureMalformed)
	}
	msg := make([]byte, 0, len(ts)+len(r.Body))
	msg = append(append(msg, ts...), r.Body...)
	// Public keys: nothing secret to time, so the first match will do.
	if !slices.ContainsFunc(v.keys, func(k ed25519.PublicKey) bool { return ed25519.Verify(k, msg, sig) }) {
		return Result{}, unauthorized(ReasonSignatureMismatch)
	}
	if err := checkUnixTime(ts, r.Now, v.window); err != nil {
		return Result{}, err
	}
	res := Result{Scheme: "discord", EventID: KeyFromJSON(r.Body, "id")}
	if KeyFromJSON(r.Body, "type") == "1" {
		res.Handshake = &Handshake{Status: http.StatusOK, ContentType: "application/json", Body: []byte(`{"type":1}`)}
	}
	return res, nil
}

// signDiscord signs as Discord does, for send-test; its secret must be
// the Ed25519 private key (128 hex digits: seed and public key, as Go's
// ed25519.PrivateKey) matching the public key the inbox verifies with.
func signDiscord(c Config, body []byte, _ *url.URL, now time.Time) (http.Header, error) {
	k, err := hex.DecodeString(strings.TrimSpace(c.Secrets[0]))
	if err != nil || len(k) != ed25519.PrivateKeySize {
		return nil, errors.New("discord verifies with Discord's public key, which cannot sign; to sign a test event, give the matching Ed25519 private key (128 hex digits) as the secret")
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	h := http.Header{}
	h.Set("X-Signature-Ed25519", hex.EncodeToString(ed25519.Sign(ed25519.PrivateKey(k), append([]byte(ts), body...))))
	h.Set("X-Signature-Timestamp", ts)
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "Discord-Interactions/1.0 (+https://discord.com)")
	return h, nil
}

func discordSample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"app_permissions":"0","application_id":"100000000000000000","id":"%d","token":"hookinbox-test-%s","type":2,"version":1,"data":{"id":"100000000000000001","name":"hookinbox","type":1},"guild_id":"100000000000000002","channel_id":"100000000000000003","member":{"user":{"id":"100000000000000004","username":"tester"}}}`,
		now.UnixNano()/1000, id)
}
