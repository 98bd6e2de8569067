package verify

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-github/v75/github"
)

func TestVerifyGitHubDocExample(t *testing.T) {
	// From GitHub's "Validating webhook deliveries".
	good := &Request{Method: "POST", Body: []byte("Hello, World!"), Now: t0, Header: http.Header{
		"X-Hub-Signature-256": {"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"},
		"X-Github-Delivery":   {"72d3162e-cc78-11e3-81ab-4c9367dc0958"},
	}}
	v := mustNew(t, Config{Scheme: "github", Secrets: []string{"It's a Secret to Everybody"}})
	res, err := v.Verify(good)
	if err != nil {
		t.Fatal(err)
	}
	if res.EventID != "72d3162e-cc78-11e3-81ab-4c9367dc0958" || res.Scheme != "github" {
		t.Fatalf("result = %+v", res)
	}
	checkCases(t, v, good, []rejectCase{
		{name: "accepted as signed"},
		{name: "accepted in upper-case hex", change: setHeader("X-Hub-Signature-256", "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17")},
		{name: "body changed", change: appendBody, reason: ReasonSignatureMismatch},
		{name: "header missing", change: delHeader("X-Hub-Signature-256"), reason: ReasonSignatureMissing},
		{name: "only the legacy sha1 header", change: func(r *Request) {
			r.Header.Del("X-Hub-Signature-256")
			r.Header.Set("X-Hub-Signature", "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59")
		}, reason: ReasonSignatureMissing},
		{name: "prefix missing", change: setHeader("X-Hub-Signature-256", "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"), reason: ReasonSignatureMalformed, status: 400},
		{name: "not hex", change: setHeader("X-Hub-Signature-256", "sha256=xyz"), reason: ReasonSignatureMalformed, status: 400},
		{name: "truncated", change: setHeader("X-Hub-Signature-256", "sha256=757107ea"), reason: ReasonSignatureMismatch},
	})
}

func TestVerifyGitHubAgainstGoGitHub(t *testing.T) {
	const secret = "gh-secret"
	body := SampleBody("github", t0)
	r := signed(t, Config{Scheme: "github", Secrets: []string{secret}}, body, "https://example.com/hooks/github", t0)

	hr := httptest.NewRequest("POST", "/hooks/github", bytes.NewReader(body))
	hr.Header = r.Header.Clone()
	if _, err := github.ValidatePayload(hr, []byte(secret)); err != nil {
		t.Fatalf("go-github rejects our signature: %v", err)
	}
	if github.DeliveryID(hr) == "" {
		t.Fatal("no delivery id")
	}

	// And what go-github would accept, we accept.
	if err := github.ValidateSignature(r.Header.Get("X-Hub-Signature-256"), body, []byte(secret)); err != nil {
		t.Fatal(err)
	}
	res, err := mustNew(t, Config{Scheme: "github", Secrets: []string{secret}}).Verify(r)
	if err != nil || res.EventID != r.Header.Get("X-GitHub-Delivery") {
		t.Fatalf("res=%+v err=%v", res, err)
	}
}
