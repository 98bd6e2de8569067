package deliver

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hookinbox/hookinbox/internal/store"
)

// TestLogsTellNoSecrets delivers, fails, retries and kills events and checks
// that the logs name inbox, event, attempt and outcome, and never a body,
// a header value or the forward URL's credentials.
func TestLogsTellNoSecrets(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n <= 3 {
			http.Error(w, "backend-body-secret", 500)
		}
	})
	core, logs := observer.New(zapcore.DebugLevel)
	q := newFakeQueue(t)
	s := New(q, zap.NewNop(), Hooks{})
	s.SetLogger(zap.New(core)) // the latest logger is the one used
	s.Configure([]Inbox{
		{Name: "in", Forward: strings.Replace(b.URL, "http://", "http://loguser:logpass@", 1) + "/?key=urlsecret", Retry: []time.Duration{5 * time.Millisecond}},
	})
	for range 2 {
		q.add("in", store.Event{
			Body:   []byte("event-body-secret"),
			Header: http.Header{"X-Hotmart-Hottok": {"header-secret"}},
		})
	}
	waitFor(t, 2*time.Second, "both finished", func() bool { return q.finished("in") == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.Stop(ctx)

	if logs.Len() == 0 {
		t.Fatal("nothing logged")
	}
	for _, e := range logs.All() {
		line := fmt.Sprintf("%s %v", e.Message, e.ContextMap())
		for _, secret := range []string{"event-body-secret", "header-secret", "backend-body-secret", "logpass", "loguser", "urlsecret"} {
			if strings.Contains(line, secret) {
				t.Errorf("log tells %q: %s", secret, line)
			}
		}
		m := e.ContextMap()
		if _, ok := m["outcome"]; ok {
			for _, k := range []string{"inbox", "id", "attempt"} {
				if _, ok := m[k]; !ok {
					t.Errorf("attempt log without %s: %s", k, line)
				}
			}
		}
	}
	if n := logs.FilterMessageSnippet("will retry").Len(); n != 2 {
		t.Errorf("%d retry logs, want 2", n)
	}
	if n := logs.FilterMessageSnippet("dead").Len(); n != 1 {
		t.Errorf("%d dead logs, want 1", n)
	}
}
