package verify

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"time"
)

// newGitHub checks GitHub's X-Hub-Signature-256: "sha256=" and the hex
// HMAC-SHA256 of the body under the webhook's secret. The event id is the
// X-GitHub-Delivery GUID, which a redelivery keeps.
func newGitHub(c Config) (Verifier, error) {
	return fixedHMAC(c, hmacVerifier{
		scheme:  "github",
		header:  "X-Hub-Signature-256",
		prefix:  "sha256=",
		hash:    sha256.New,
		enc:     hexEncoding,
		eventID: headerEventID("X-GitHub-Delivery"),
		decorate: func(h http.Header, _ []byte) {
			h.Set("X-GitHub-Event", "ping")
			h.Set("X-GitHub-Delivery", newID())
			h.Set("X-GitHub-Hook-ID", "1")
			h.Set("Content-Type", "application/json")
			h.Set("User-Agent", "GitHub-Hookshot/hookinbox")
		},
	})
}

// newBitbucket checks Bitbucket's X-Hub-Signature, which copies GitHub's
// scheme: "sha256=" and the hex HMAC-SHA256 of the body. The event id is
// X-Request-UUID (Bitbucket Cloud), or X-Request-Id (Data Center).
func newBitbucket(c Config) (Verifier, error) {
	return fixedHMAC(c, hmacVerifier{
		scheme: "bitbucket",
		header: "X-Hub-Signature",
		prefix: "sha256=",
		hash:   sha256.New,
		enc:    hexEncoding,
		eventID: func(r *Request) string {
			if id := KeyFromHeader(r.Header, "X-Request-UUID"); id != "" {
				return id
			}
			return KeyFromHeader(r.Header, "X-Request-Id")
		},
		decorate: func(h http.Header, _ []byte) {
			h.Set("X-Event-Key", "repo:push")
			h.Set("X-Request-UUID", newID())
			h.Set("X-Hook-UUID", newID())
			h.Set("Content-Type", "application/json")
			h.Set("User-Agent", "Bitbucket-Webhooks/2.0")
		},
	})
}

func bitbucketSample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"push":{"changes":[]},"repository":{"type":"repository","full_name":"team/hookinbox-test","uuid":"{%s}"},"actor":{"type":"user","display_name":"Test User"},"hookinbox_test_at":%q}`,
		id, now.UTC().Format(time.RFC3339))
}

func githubSample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"zen":"Keep it logically awesome.","hook_id":1,"hook":{"type":"Repository","id":1,"name":"web","active":true,"events":["push"],"config":{"content_type":"json","insecure_ssl":"0","url":"https://example.com/hooks/github"},"updated_at":%q,"created_at":%q},"repository":{"id":1,"name":"hookinbox-test","full_name":"octo-org/hookinbox-test"},"sender":{"login":"octocat","id":1},"hookinbox_test_id":%q}`,
		now.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), id)
}
