package verify

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestVerifyHMAC(t *testing.T) {
	body := []byte(`{"id":"evt_1","amount":10}`)
	ts := strconv.FormatInt(t0.Unix(), 10)
	cases := []struct {
		name   string
		config Config
		header http.Header // without the signature
		sig    string
	}{{
		name:   "default: sha256 hex over the body",
		config: Config{Header: "X-Signature"},
		sig:    hex.EncodeToString(mac(sha256.New, []byte("k"), body)),
	}, {
		name:   "sha1 base64 with prefix",
		config: Config{Header: "X-Signature", Algorithm: "sha1", Encoding: "base64", Prefix: "sha1="},
		sig:    "sha1=" + base64.StdEncoding.EncodeToString(mac(sha1.New, []byte("k"), body)),
	}, {
		name:   "sha512 over timestamp.body",
		config: Config{Header: "X-Signature", Algorithm: "sha512", Content: "{timestamp}.{body}", TimestampHeader: "X-Timestamp"},
		header: http.Header{"X-Timestamp": {ts}},
		sig:    hex.EncodeToString(mac(sha512.New, []byte("k"), []byte(ts+"."), body)),
	}, {
		name:   "timestamp in milliseconds",
		config: Config{Header: "X-Signature", Content: "{timestamp}{body}", TimestampHeader: "X-Timestamp"},
		header: http.Header{"X-Timestamp": {ts + "000"}},
		sig:    hex.EncodeToString(mac(sha256.New, []byte("k"), []byte(ts+"000"), body)),
	}, {
		name:   "id, another header, the URL and literal braces",
		config: Config{Header: "X-Signature", Content: "{{{id}}}|{header.x-account}|{url}|{body}", IDHeader: "X-Event-Id"},
		header: http.Header{"X-Event-Id": {"evt-42"}, "X-Account": {"acct"}},
		sig:    hex.EncodeToString(mac(sha256.New, []byte("k"), []byte("{evt-42}|acct|https://example.com/h?a=1|"), body)),
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.config
			c.Scheme, c.Secrets = "hmac", []string{"other", "k"}
			h := tc.header.Clone()
			if h == nil {
				h = http.Header{}
			}
			h.Set("X-Signature", tc.sig)
			good := &Request{Method: "POST", URL: mustURL(t, "https://example.com/h?a=1"), Header: h, Body: body, Now: t0}
			v := mustNew(t, c)
			res, err := v.Verify(good)
			if err != nil {
				t.Fatal(err)
			}
			if c.IDHeader != "" && res.EventID != h.Get(c.IDHeader) {
				t.Fatalf("event id %q", res.EventID)
			}
			rc := []rejectCase{
				{name: "body changed", change: appendBody, reason: ReasonSignatureMismatch},
				{name: "signature missing", change: delHeader("X-Signature"), reason: ReasonSignatureMissing},
				{name: "signature not decodable", change: setHeader("X-Signature", c.Prefix+"!!"), reason: ReasonSignatureMalformed, status: 400},
			}
			if c.TimestampHeader != "" {
				rc = append(rc,
					rejectCase{name: "too old", change: at(t0.Add(6 * time.Minute)), reason: ReasonTimestampExpired},
					rejectCase{name: "too far in the future", change: at(t0.Add(-6 * time.Minute)), reason: ReasonTimestampInFuture},
					rejectCase{name: "timestamp missing", change: delHeader(c.TimestampHeader), reason: ReasonTimestampMissing},
					rejectCase{name: "timestamp malformed", change: setHeader(c.TimestampHeader, "yesterday"), reason: ReasonTimestampMalformed, status: 400},
				)
			}
			if c.Prefix != "" {
				rc = append(rc, rejectCase{name: "prefix missing", change: setHeader("X-Signature", tc.sig[len(c.Prefix):]), reason: ReasonSignatureMalformed, status: 400})
			}
			if c.IDHeader != "" {
				rc = append(rc, rejectCase{name: "id missing", change: delHeader(c.IDHeader), reason: ReasonIDMissing})
			}
			checkCases(t, v, good, rc)

			// What we sign, we accept (a header named in the content
			// is absent on both sides).
			r := signed(t, c, body, "https://example.com/h?a=1", t0)
			if _, err := v.Verify(r); err != nil {
				t.Fatalf("own signature rejected: %v", err)
			}
		})
	}
}

func TestNewHMACConfigErrors(t *testing.T) {
	for name, c := range map[string]Config{
		"no header":                      {},
		"unknown algorithm":              {Header: "X-S", Algorithm: "md5"},
		"unknown encoding":               {Header: "X-S", Encoding: "base32"},
		"unknown placeholder":            {Header: "X-S", Content: "{bodyy}"},
		"unclosed placeholder":           {Header: "X-S", Content: "{body"},
		"stray closing brace":            {Header: "X-S", Content: "body}"},
		"timestamp without its header":   {Header: "X-S", Content: "{timestamp}{body}"},
		"id without its header":          {Header: "X-S", Content: "{id}{body}"},
		"timestamp header left unsigned": {Header: "X-S", TimestampHeader: "X-T"},
		"tolerance without timestamp":    {Header: "X-S", Tolerance: time.Minute},
		"query does not apply":           {Header: "X-S", Query: "q"},
	} {
		t.Run(name, func(t *testing.T) {
			c.Scheme, c.Secrets = "hmac", []string{"k"}
			if _, err := New(c); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
