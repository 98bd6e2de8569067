package verify

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
)

// hashFor names the hash functions a sender may use for an HMAC.
func hashFor(algorithm string) (func() hash.Hash, error) {
	switch algorithm {
	case "sha1":
		return sha1.New, nil
	case "", "sha256":
		return sha256.New, nil
	case "sha512":
		return sha512.New, nil
	}
	return nil, fmt.Errorf("unknown algorithm %q (want sha1, sha256 or sha512)", algorithm)
}

// mac is the HMAC of the concatenated parts under key.
func mac(h func() hash.Hash, key []byte, parts ...[]byte) []byte {
	m := hmac.New(h, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// anyKey reports whether sig equals the MAC computed by sum under any one
// of keys. Every key is tried, so the time taken says nothing about which
// key, if any, matched.
func anyKey(keys [][]byte, sig []byte, sum func(key []byte) []byte) bool {
	return matchKey(keys, sig, sum) != nil
}

// anySignature reports whether any of sigs is the MAC of the request under
// any of keys, for senders that send several signatures (secret rotation on
// their side). Each key's MAC is computed once, not once per signature, and
// every comparison runs, so the time does not tell which one matched.
func anySignature(keys, sigs [][]byte, sum func(key []byte) []byte) bool {
	match := false
	for _, k := range keys {
		want := sum(k)
		for _, sig := range sigs {
			if hmac.Equal(want, sig) {
				match = true
			}
		}
	}
	return match
}

// matchKey is anyKey that also says which key matched.
func matchKey(keys [][]byte, sig []byte, sum func(key []byte) []byte) []byte {
	var match []byte
	for _, k := range keys {
		if hmac.Equal(sum(k), sig) && match == nil {
			match = k
		}
	}
	return match
}

// sameToken compares a received token with an expected one in constant
// time, lengths included: hashing both first keeps the comparison from
// leaking how long the secret is.
func sameToken(got string, want []byte) bool {
	a := sha256.Sum256([]byte(got))
	b := sha256.Sum256(want)
	return hmac.Equal(a[:], b[:])
}

// checkToken is the rejection of a static token that is missing or matches
// none of tokens, or nil. Every token is compared, in constant time.
func checkToken(got string, tokens [][]byte) error {
	if got == "" {
		return unauthorized(ReasonTokenMissing)
	}
	ok := false
	for _, t := range tokens {
		if sameToken(got, t) {
			ok = true
		}
	}
	if !ok {
		return unauthorized(ReasonTokenMismatch)
	}
	return nil
}

// secretBytes turns configured secrets into keys.
func secretBytes(secrets []string) [][]byte {
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		keys[i] = []byte(s)
	}
	return keys
}

// encoding is how a signature is written in its header.
type encoding int

const (
	hexEncoding encoding = iota
	base64Encoding
)

func encodingFor(name string) (encoding, error) {
	switch name {
	case "", "hex":
		return hexEncoding, nil
	case "base64":
		return base64Encoding, nil
	}
	return 0, fmt.Errorf("unknown encoding %q (want hex or base64)", name)
}

func (e encoding) decode(s string) ([]byte, error) {
	if e == base64Encoding {
		return base64.StdEncoding.DecodeString(s)
	}
	return hex.DecodeString(s)
}

func (e encoding) encode(b []byte) string {
	if e == base64Encoding {
		return base64.StdEncoding.EncodeToString(b)
	}
	return hex.EncodeToString(b)
}

// newID returns a random UUID (version 4), for the ids a sender would
// attach to a test event.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
