package caddymodule

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hookinbox/hookinbox/internal/store"
)

func TestAdminDeadEventShownReplayedAndDelivered(t *testing.T) {
	app := newSwitchable(t, http.StatusUnprocessableEntity)
	startCaddy(t, inboxConfig(t.TempDir(), app.srv.URL, "retry 20ms"))
	id := sendDead(t, 1)[0]

	var list struct {
		Events     []eventView `json:"events"`
		NextCursor string      `json:"next_cursor"`
	}
	adminOK(t, http.MethodGet, "/hookinbox/events?state=dead", &list)
	if len(list.Events) != 1 || list.Events[0].ID != id || list.Events[0].State != store.Dead || list.Events[0].Attempts != 2 {
		t.Fatalf("dead events = %s, want %s alone with 2 attempts", jsonBody(list), id)
	}

	var detail eventDetail
	adminOK(t, http.MethodGet, "/hookinbox/events/"+id, &detail)
	if len(detail.History) != 2 {
		t.Fatalf("history has %d attempts, want 2: %s", len(detail.History), jsonBody(detail))
	}
	for i, a := range detail.History {
		if a.N != i+1 || a.Outcome != store.OutcomeClientError || a.Status != 422 || a.At.IsZero() || a.Duration == "" {
			t.Errorf("attempt %d = %+v, want n=%d client_error 422 with time and duration", i, a, i+1)
		}
		if a.Response != "answer of the app" || a.ResponseEncoding != "text" {
			t.Errorf("attempt %d response = %q (%s), want the app's answer", i, a.Response, a.ResponseEncoding)
		}
		if a.Hint != outcomeHints[store.OutcomeClientError] || a.Hint == "" {
			t.Errorf("attempt %d hint = %q", i, a.Hint)
		}
	}
	if detail.Body != `{"id":"evt-dead-x"}` || detail.BodyEncoding != "text" {
		t.Errorf("body = %q (%s)", detail.Body, detail.BodyEncoding)
	}
	if got := detail.Header.Get("X-Hotmart-Hottok"); got != redacted {
		t.Errorf("stored hottok shown as %q, want %s", got, redacted)
	}

	app.status.Store(http.StatusOK)
	var replayed struct {
		Replayed int `json:"replayed"`
	}
	adminOK(t, http.MethodPost, "/hookinbox/events/"+id+"/replay", &replayed)
	if replayed.Replayed != 1 {
		t.Errorf("replayed = %d, want 1", replayed.Replayed)
	}
	waitFor(t, "the replayed event delivered", 5*time.Second, func() bool {
		var d eventDetail
		adminOK(t, http.MethodGet, "/hookinbox/events/"+id, &d)
		detail = d
		return d.State == store.Delivered
	})
	if n := len(detail.History); n != 3 || detail.History[2].Outcome != store.OutcomeOK || detail.History[2].Hint != "" {
		t.Errorf("history after replay = %s, want the two failures then ok", jsonBody(detail.History))
	}
}

func TestAdminBulkReplayDeliversEveryDeadEvent(t *testing.T) {
	const n = 5
	app := newSwitchable(t, http.StatusNotFound)
	startCaddy(t, inboxConfig(t.TempDir(), app.srv.URL, "retry 20ms"))
	ids := sendDead(t, n)

	app.status.Store(http.StatusOK)
	var answer struct {
		Replayed int `json:"replayed"`
	}
	adminOK(t, http.MethodPost, "/hookinbox/inboxes/test/replay?state=dead", &answer)
	if answer.Replayed != n {
		t.Fatalf("replayed = %d, want %d", answer.Replayed, n)
	}
	waitFor(t, "every replayed event delivered", 10*time.Second, func() bool {
		var list struct {
			Events []eventView `json:"events"`
		}
		adminOK(t, http.MethodGet, "/hookinbox/events?inbox=test&state=delivered", &list)
		return len(list.Events) == n
	})
	var inboxes struct {
		Inboxes []inboxView `json:"inboxes"`
	}
	adminOK(t, http.MethodGet, "/hookinbox/inboxes", &inboxes)
	if len(inboxes.Inboxes) != 1 {
		t.Fatalf("inboxes = %s, want test alone", jsonBody(inboxes))
	}
	in := inboxes.Inboxes[0]
	if in.Inbox != "test" || !in.Configured || in.Counts[store.Delivered] != n || in.Counts[store.Dead] != 0 || in.Counts[store.Pending] != 0 {
		t.Errorf("inbox = %s, want %d delivered and nothing else", jsonBody(in), n)
	}
	if in.Breaker == nil || in.Breaker.State != "closed" {
		t.Errorf("breaker = %+v, want closed", in.Breaker)
	}
	_ = ids
}

func TestAdminListPagesNewestFirst(t *testing.T) {
	app := newSwitchable(t, http.StatusOK)
	startCaddy(t, inboxConfig(t.TempDir(), app.srv.URL, ""))
	var sent []string
	for i := range 5 {
		status, answer := send(t, `{"id":"evt-page-`+string(rune('a'+i))+`"}`)
		if status != http.StatusOK {
			t.Fatalf("status = %d (%s)", status, answer)
		}
		sent = append(sent, eventID(t, answer))
		time.Sleep(2 * time.Millisecond) // ids order by arrival to the millisecond
	}
	var got []string
	cursor := ""
	for page := 0; page < 5; page++ {
		var list struct {
			Events     []eventView `json:"events"`
			NextCursor string      `json:"next_cursor"`
		}
		adminOK(t, http.MethodGet, "/hookinbox/events?inbox=test&limit=2&cursor="+url.QueryEscape(cursor), &list)
		if len(list.Events) > 2 {
			t.Fatalf("page of %d events, want at most 2", len(list.Events))
		}
		for _, e := range list.Events {
			got = append(got, e.ID)
		}
		if list.NextCursor == "" {
			break
		}
		cursor = list.NextCursor
	}
	if len(got) != len(sent) {
		t.Fatalf("listed %v, want %d events", got, len(sent))
	}
	for i := range got {
		if got[i] != sent[len(sent)-1-i] {
			t.Fatalf("listed %v, want newest first %v", got, sent)
		}
	}
}

func TestAdminErrors(t *testing.T) {
	app := newSwitchable(t, http.StatusOK)
	startCaddy(t, inboxConfig(t.TempDir(), app.srv.URL, ""))

	cases := []struct {
		name   string
		method string
		path   string
		status int
		says   string
	}{
		{"unknown event is 404", http.MethodGet, "/hookinbox/events/01J0000000000000000000NONE", 404, "not found"},
		{"replay of an unknown event is 404", http.MethodPost, "/hookinbox/events/01J0000000000000000000NONE/replay", 404, "not found"},
		{"delete of an unknown event is 404", http.MethodDelete, "/hookinbox/events/01J0000000000000000000NONE", 404, "not found"},
		{"unknown inbox replay is 404", http.MethodPost, "/hookinbox/inboxes/nope/replay?state=dead", 404, "unknown inbox"},
		{"unknown route is 404", http.MethodGet, "/hookinbox/nothing", 404, "not found"},
		{"bad state is 400", http.MethodGet, "/hookinbox/events?state=lost", 400, "unknown state"},
		{"bad limit is 400", http.MethodGet, "/hookinbox/events?limit=0", 400, "limit"},
		{"bad since is 400", http.MethodGet, "/hookinbox/events?since=yesterday", 400, "since"},
		{"bad cursor is 400", http.MethodGet, "/hookinbox/events?cursor=../../x", 400, "cursor"},
		{"a cursor that is no event id is 400", http.MethodGet, "/hookinbox/events?cursor=abc", 400, "invalid cursor"},
		{"cursor 0 is 400", http.MethodGet, "/hookinbox/events?cursor=0", 400, "invalid cursor"},
		{"a cursor past the largest id is 400", http.MethodGet, "/hookinbox/events?cursor=8ZZZZZZZZZZZZZZZZZZZZZZZZZ", 400, "invalid cursor"},
		{"a cursor with an inbox filter is 400", http.MethodGet, "/hookinbox/events?inbox=test&state=dead&cursor=abc", 400, "invalid cursor"},
		{"a limit that is no number is 400", http.MethodGet, "/hookinbox/events?limit=ten", 400, "limit"},
		{"a limit over the maximum is 400", http.MethodGet, "/hookinbox/events?limit=1001", 400, "limit"},
		{"a fractional limit is 400", http.MethodGet, "/hookinbox/events?limit=1.5", 400, "limit"},
		{"bad until is 400", http.MethodGet, "/hookinbox/events?until=-1h", 400, "until"},
		{"since after until is 400", http.MethodGet, "/hookinbox/events?since=2026-11-05T12:00:00Z&until=2026-11-05T10:00:00Z", 400, "since"},
		{"a parameter given twice is 400", http.MethodGet, "/hookinbox/events?limit=1&limit=2", 400, "limit"},
		{"a query that does not parse is 400", http.MethodGet, "/hookinbox/events?cursor=%zz", 400, "invalid query"},
		{"a query with a semicolon is 400", http.MethodGet, "/hookinbox/events?state=dead;limit=2", 400, "invalid query"},
		{"unknown parameter of bulk replay is 400", http.MethodPost, "/hookinbox/inboxes/test/replay?stat=dead", 400, "unknown parameter"},
		{"bad state of bulk replay is 400", http.MethodPost, "/hookinbox/inboxes/test/replay?state=lost", 400, "unknown state"},
		{"state given twice to bulk replay is 400", http.MethodPost, "/hookinbox/inboxes/test/replay?state=dead&state=pending", 400, "state given 2 times"},
		{"a parameter of inboxes is 400", http.MethodGet, "/hookinbox/inboxes?inbox=test", 400, `unknown parameter \"inbox\" (this route takes none)`},
		{"a parameter of one event is 400", http.MethodGet, "/hookinbox/events/01J0000000000000000000NONE?full=1", 400, "unknown parameter"},
		{"a parameter of an event's replay is 400", http.MethodPost, "/hookinbox/events/01J0000000000000000000NONE/replay?state=dead", 400, "unknown parameter"},
		{"a parameter of delete is 400", http.MethodDelete, "/hookinbox/events/01J0000000000000000000NONE?force=1", 400, "unknown parameter"},
		{"unknown parameter is 400", http.MethodGet, "/hookinbox/events?stat=dead", 400, "unknown parameter"},
		{"bulk replay of delivering is 400", http.MethodPost, "/hookinbox/inboxes/test/replay?state=delivering", 400, "one by one"},
		{"POST on inboxes is 405", http.MethodPost, "/hookinbox/inboxes", 405, "method not allowed"},
		{"GET on replay is 405", http.MethodGet, "/hookinbox/inboxes/test/replay", 405, "method not allowed"},
		{"PUT on an event is 405", http.MethodPut, "/hookinbox/events/x", 405, "method not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, raw := admin(t, tc.method, tc.path, nil)
			if status != tc.status {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, status, raw, tc.status)
			}
			if !strings.HasPrefix(raw, `{"error":"`) || !strings.Contains(raw, tc.says) {
				t.Errorf("answer = %s, want {\"error\": …%s…}", raw, tc.says)
			}
		})
	}
}

func TestAdminWithoutHookinboxAppIs503(t *testing.T) {
	startCaddy(t, `{
	admin localhost:2999
	http_port 9080
	https_port 9443
	skip_install_trust
}
http://localhost:9080 {
	respond "no inbox here"
}
`)
	status, raw := admin(t, http.MethodGet, "/hookinbox/inboxes", nil)
	if status != http.StatusServiceUnavailable || !strings.Contains(raw, `"error"`) {
		t.Errorf("GET /hookinbox/inboxes = %d %s, want 503 with an error", status, raw)
	}
}

func TestAdminInboxesListsConfiguredInboxesWithoutEvents(t *testing.T) {
	app := newSwitchable(t, http.StatusOK)
	startCaddy(t, inboxConfig(t.TempDir(), app.srv.URL+"/hook?key=app-secret", ""))
	var answer struct {
		Inboxes []inboxView `json:"inboxes"`
	}
	raw := adminOK(t, http.MethodGet, "/hookinbox/inboxes", &answer)
	if len(answer.Inboxes) != 1 {
		t.Fatalf("inboxes = %s, want test", raw)
	}
	in := answer.Inboxes[0]
	if in.Inbox != "test" || !in.Configured || in.OldestPending != nil || len(in.Counts) != 4 {
		t.Errorf("inbox = %s, want test, configured, four zero counts", raw)
	}
	if in.Forward != app.srv.URL+"/hook" || strings.Contains(raw, "app-secret") {
		t.Errorf("forward shown as %q; want it without its query", in.Forward)
	}
}

func TestParseEventQuery(t *testing.T) {
	now := time.Date(2026, 11, 5, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name  string
		query string
		want  store.Query
		fails bool
	}{
		{"empty", "", store.Query{}, false},
		{"all filters", "inbox=a&state=dead&limit=10&cursor=01ABC", store.Query{Inbox: "a", State: store.Dead, Limit: 10, Cursor: "01ABC"}, false},
		{"since as a duration", "since=1h", store.Query{Since: now.Add(-time.Hour)}, false},
		{"until as RFC 3339", "until=2026-11-05T10:00:00Z", store.Query{Until: now.Add(-2 * time.Hour)}, false},
		{"limit over the maximum", "limit=1001", store.Query{}, true},
		{"negative limit", "limit=-1", store.Query{}, true},
		{"unknown state", "state=done", store.Query{}, true},
		{"cursor with a slash", "cursor=a/b", store.Query{}, true},
		{"since after until", "since=1h&until=2h", store.Query{}, true},
		{"since equal to until", "since=2026-11-05T10:00:00Z&until=2026-11-05T10:00:00Z", store.Query{}, true},
		{"since before until", "since=2h&until=1h", store.Query{Since: now.Add(-2 * time.Hour), Until: now.Add(-time.Hour)}, false},
		{"a parameter twice", "state=dead&state=pending", store.Query{}, true},
		{"a fractional limit", "limit=2.5", store.Query{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := url.ParseQuery(tc.query)
			got, err := parseEventQuery(v, now)
			if (err != nil) != tc.fails {
				t.Fatalf("err = %v, want failure %v", err, tc.fails)
			}
			if !tc.fails && (got.Inbox != tc.want.Inbox || got.State != tc.want.State || got.Limit != tc.want.Limit ||
				got.Cursor != tc.want.Cursor || !got.Since.Equal(tc.want.Since) || !got.Until.Equal(tc.want.Until)) {
				t.Errorf("query = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestHintForEveryFailedOutcome(t *testing.T) {
	for _, outcome := range []string{
		store.OutcomeConnect, store.OutcomeTLS, store.OutcomeTimeout, store.OutcomeReset,
		store.OutcomeRedirect, store.OutcomeClientError, store.OutcomeServerError,
	} {
		if hintFor(outcome) == "" {
			t.Errorf("no hint for outcome %s", outcome)
		}
	}
	if h := hintFor(store.OutcomeOK); h != "" {
		t.Errorf("hint for ok = %q, want none", h)
	}
}

// FuzzParseEventQuery: whatever the query string, parsing gives a query
// within the documented bounds or an error, never a panic.
func FuzzParseEventQuery(f *testing.F) {
	f.Add("inbox=hotmart&state=dead&limit=10")
	f.Add("since=1h&until=2026-11-22T10:00:00Z&cursor=01K0000000000000000000000")
	f.Add("limit=-1&state=lost&since=yesterday")
	f.Add("%zz&&=&limit=99999999999999999999")
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := parseEventQuery(v, now)
		if err != nil {
			return
		}
		if q.Limit < 0 || q.Limit > 1000 {
			t.Errorf("limit %d out of bounds for %q", q.Limit, raw)
		}
	})
}
