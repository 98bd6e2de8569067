package verify

import (
	"fmt"
	"net/http"
	"time"
)

// newGitLab checks X-Gitlab-Token, the secret token of a GitLab webhook,
// sent as is. (A GitLab webhook with a signing token instead sends
// Standard Webhooks headers: use the standard scheme.) The event id is
// Idempotency-Key, which GitLab keeps across retries (GitLab 17.4+). There
// is no fallback: X-Gitlab-Event-UUID is shared by every webhook that an
// earlier webhook triggered (GitLab's docs, "Delivery headers"), so two
// different events could carry it, and X-Gitlab-Webhook-UUID is new on
// each request.
func newGitLab(c Config) (Verifier, error) {
	return headerToken("gitlab", "X-Gitlab-Token", c, headerEventID("Idempotency-Key"),
		func(h http.Header, _ []byte) {
			h.Set("X-Gitlab-Event", "Push Hook")
			h.Set("X-Gitlab-Event-UUID", newID())
			h.Set("Idempotency-Key", newID())
			h.Set("Content-Type", "application/json")
			h.Set("User-Agent", "GitLab/18.0.0")
		})
}

func gitlabSample(id string, now time.Time) []byte {
	return fmt.Appendf(nil, `{"object_kind":"push","event_name":"push","before":"0000000000000000000000000000000000000000","after":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7","ref":"refs/heads/main","user_name":"Test User","project":{"id":1,"name":"hookinbox-test","path_with_namespace":"group/hookinbox-test"},"commits":[],"total_commits_count":0,"hookinbox_test_id":%q,"hookinbox_test_at":%q}`,
		id, now.UTC().Format(time.RFC3339))
}
