package caddymodule

import (
	"context"
	"html/template"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"go.uber.org/zap"

	"github.com/hookinbox/hookinbox/internal/store"
)

// The dashboard's answers, without a browser and without Caddy: the
// handler over an open store, its events put there directly.

const uiSecret = "s3cret-hottok-value"

type uiFixture struct {
	srv *httptest.Server
	app *App
	db  store.Store
}

func newUIFixture(t *testing.T) *uiFixture {
	t.Helper()
	e := &engine{opener: &BadgerStore{Dir: t.TempDir()}, opened: make(chan struct{})}
	t.Cleanup(func() { e.Destruct() })
	app := testApp(e, "shop")
	if err := e.open(zap.NewNop(), app.metrics); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	e.noteSecrets([]string{uiSecret})
	e.mu.Unlock()
	db := e.store()
	srv := httptest.NewServer(newDashboard(func() (*App, store.Store, error) { return app, db, nil }))
	t.Cleanup(srv.Close)
	return &uiFixture{srv: srv, app: app, db: db}
}

// add stores an event; with status > 0 it then fails once with that status
// and is dead.
func (f *uiFixture) add(t *testing.T, body, dedupe string, header http.Header, status int) string {
	t.Helper()
	if header == nil {
		header = http.Header{}
	}
	header.Set("Content-Type", "application/json")
	id, _, err := f.db.Enqueue(context.Background(), &store.Event{
		Inbox: "shop", ReceivedAt: time.Now(), Method: http.MethodPost, Path: "/hooks/shop",
		Header: header, Body: []byte(body), Verified: "hotmart", DedupeKey: dedupe,
	}, store.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if status == 0 {
		return id
	}
	leased, _, err := f.db.Lease("shop", time.Now().Add(time.Second), false)
	if err != nil || leased != id {
		t.Fatalf("lease = %q, %v; want %s", leased, err, id)
	}
	outcome := store.OutcomeClientError
	if status >= 500 {
		outcome = store.OutcomeServerError
	}
	a := store.Attempt{N: 1, At: time.Now(), Duration: 12 * time.Millisecond, Outcome: outcome, Status: status,
		Response: []byte(`<b>app says no</b> ` + uiSecret)}
	if _, err := f.db.Record(id, a, store.Next{Dead: true}); err != nil {
		t.Fatal(err)
	}
	return id
}

// do sends a request; same-origin unless header says otherwise.
func (f *uiFixture) do(t *testing.T, method, path string, form url.Values, header ...string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

func TestUIPagesAnswerWithTheirSecurityHeaders(t *testing.T) {
	f := newUIFixture(t)
	dead := f.add(t, `{"id":"evt-1"}`, "evt-1", nil, 422)
	cases := []struct {
		name, path string
		status     int
		says       string
	}{
		{"the inboxes", "/", 200, "<svg"},
		{"the events", "/events", 200, dead},
		{"the dead events", "/events?state=dead&inbox=shop", 200, dead},
		{"one event", "/events/" + dead, 200, "app says no"},
		{"the delete confirmation", "/events/" + dead + "/delete", 200, "Delete it"},
		{"the bulk replay count", "/replay?state=dead", 200, `<b id="replay-count">1</b>`},
		{"an unknown event", "/events/01J0000000000000000000NONE", 404, "not found"},
		{"an unknown page", "/nothing", 404, "no page"},
		{"a bad state", "/events?state=lost", 400, "unknown state"},
		{"a bad status", "/events?status=abc", 400, "status must be"},
		{"a bad cursor", "/events?cursor=zzz", 400, "invalid cursor"},
		{"the stylesheet", "/assets/style.css", 200, "svg.chart"},
		{"the script", "/assets/ui.js", 200, "visibilityState"},
		{"no asset outside the assets", "/assets/layout.html", 404, "no asset"},
		{"an unknown job", "/jobs/999", 404, "no such replay"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := f.do(t, http.MethodGet, tc.path, nil)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.says) {
				t.Fatalf("GET %s = %d, want %d with %q:\n%.2000s", tc.path, resp.StatusCode, tc.status, tc.says, body)
			}
			h := resp.Header
			if got := h.Get("Content-Security-Policy"); got != contentSecurityPolicy ||
				!strings.Contains(got, "default-src 'self'") || !strings.Contains(got, "frame-ancestors 'none'") ||
				strings.Contains(got, "unsafe-") {
				t.Errorf("Content-Security-Policy = %q", got)
			}
			if h.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", h.Get("X-Content-Type-Options"))
			}
			if tc.status == 200 && strings.HasSuffix(h.Get("Content-Type"), "html; charset=utf-8") {
				// No inline script, no inline handler: the policy would block them anyway.
				if regexp.MustCompile(`<script>|<script [^>]*>[^<]|\son[a-z]+=`).MatchString(body) {
					t.Errorf("page has inline script:\n%s", body)
				}
				if strings.Contains(body, `href="/`) || strings.Contains(body, `action="/`) || strings.Contains(body, `src="/`) {
					t.Errorf("page has an absolute link, which breaks under a prefix:\n%s", body)
				}
			}
		})
	}
}

func TestUIEscapesPayloadsAndHidesSecrets(t *testing.T) {
	f := newUIFixture(t)
	markup := `<script>window.pwned=1</script><img src=x onerror="window.pwned=2">`
	header := http.Header{"X-Evil": {markup}, "X-Hotmart-Hottok": {uiSecret}}
	id := f.add(t, `{"name":"`+strings.ReplaceAll(markup, `"`, `\"`)+`","token":"`+uiSecret+`"}`, markup, header, 500)
	for _, path := range []string{"/events/" + id, "/events", "/events/" + id + "/delete"} {
		_, body := f.do(t, http.MethodGet, path, nil)
		if strings.Contains(body, "<script>window") || strings.Contains(body, "<img src=x") {
			t.Errorf("GET %s shows the payload's markup unescaped", path)
		}
		if !strings.HasSuffix(path, "/delete") && !strings.Contains(body, "&lt;script&gt;window.pwned=1&lt;/script&gt;") {
			t.Errorf("GET %s does not show the payload's markup as text", path)
		}
		if strings.Contains(body, uiSecret) {
			t.Errorf("GET %s shows the secret:\n%s", path, excerpt(body, uiSecret))
		}
	}
	_, body := f.do(t, http.MethodGet, "/events/"+id, nil)
	for _, want := range []string{"<b>app says no</b>", hintFor(store.OutcomeServerError), "HTTP 500", "Dead since"} {
		if !strings.Contains(body, template.HTMLEscapeString(want)) {
			t.Errorf("event page lacks %q", want)
		}
	}
}

func TestUIChangesOnlyByPOSTFromItsOwnOrigin(t *testing.T) {
	f := newUIFixture(t)
	id := f.add(t, `{"id":"evt-2"}`, "evt-2", nil, 404)
	state := func() store.State {
		e, _, err := f.db.Get(id)
		if err != nil {
			return "gone"
		}
		return e.State
	}

	for _, path := range []string{"/events/" + id + "/replay", "/events/" + id + "/delete"} {
		resp, _ := f.do(t, http.MethodPut, path, nil)
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("PUT %s = %d, want 405", path, resp.StatusCode)
		}
	}
	resp, _ := f.do(t, http.MethodGet, "/events/"+id+"/replay", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET of the replay action = %d, want 405", resp.StatusCode)
	}
	f.do(t, http.MethodGet, "/events/"+id+"/delete", nil) // the confirmation page
	f.do(t, http.MethodGet, "/replay?state=dead", nil)    // the count
	if s := state(); s != store.Dead {
		t.Fatalf("after GETs the event is %s, want dead: a GET changed it", s)
	}

	crossOrigin := [][]string{
		{"Origin", "https://evil.example"},
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site", "Origin", "https://sub.example"},
	}
	for _, h := range crossOrigin {
		for _, path := range []string{"/events/" + id + "/replay", "/events/" + id + "/delete", "/replay"} {
			resp, body := f.do(t, http.MethodPost, path, url.Values{"state": {"dead"}}, h...)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "cross-origin") {
				t.Errorf("POST %s with %v = %d, want 403", path, h, resp.StatusCode)
			}
		}
	}
	if s := state(); s != store.Dead {
		t.Fatalf("after refused POSTs the event is %s, want dead", s)
	}

	resp, _ = f.do(t, http.MethodPost, "/events/"+id+"/replay", url.Values{}, "Sec-Fetch-Site", "same-origin")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "../"+id {
		t.Errorf("replay = %d to %q, want 303 to ../%s", resp.StatusCode, resp.Header.Get("Location"), id)
	}
	if s := state(); s != store.Pending {
		t.Errorf("replayed event is %s, want pending", s)
	}
	resp, _ = f.do(t, http.MethodPost, "/events/"+id+"/delete", url.Values{}, "Origin", f.srv.URL)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "../../events?deleted=") {
		t.Errorf("delete = %d to %q, want 303 to the events", resp.StatusCode, resp.Header.Get("Location"))
	}
	if s := state(); s != "gone" {
		t.Errorf("deleted event is %s", s)
	}
}

func TestUIFiltersOnTheLastAttemptAndTheSendersID(t *testing.T) {
	f := newUIFixture(t)
	refused := f.add(t, `{}`, "order-1-approved", nil, 422)
	failed := f.add(t, `{}`, "order-1-refunded", nil, 503)
	waiting := f.add(t, `{}`, "order-2-approved", nil, 0)
	cases := []struct {
		query string
		want  []string
	}{
		{"", []string{waiting, failed, refused}},
		{"outcome=client_error", []string{refused}},
		{"outcome=none", []string{waiting}},
		{"status=5xx", []string{failed}},
		{"status=422", []string{refused}},
		{"sender_id=order-1", []string{failed, refused}},
		{"sender_id=order-2&state=dead", nil},
		{"state=pending", []string{waiting}},
		{"since=1h", []string{waiting, failed, refused}},
		{"until=1h", nil},
	}
	idLink := regexp.MustCompile(`href="\./events/([0-9A-Z]{26})"`)
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			resp, body := f.do(t, http.MethodGet, "/events?"+tc.query, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			var got []string
			for _, m := range idLink.FindAllStringSubmatch(body, -1) {
				got = append(got, m[1])
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("events = %v, want %v (newest first)", got, tc.want)
			}
		})
	}
}

func TestUIPagesWithTheStoresCursor(t *testing.T) {
	f := newUIFixture(t)
	for range pageSize + 3 {
		f.add(t, `{}`, "", nil, 0)
	}
	_, body := f.do(t, http.MethodGet, "/events?inbox=shop", nil)
	next := regexp.MustCompile(`href="(\./events\?cursor=[0-9A-Z]+&amp;inbox=shop)"`).FindStringSubmatch(body)
	if next == nil {
		t.Fatalf("no link to the next page:\n%s", body)
	}
	_, body = f.do(t, http.MethodGet, strings.ReplaceAll(next[1][1:], "&amp;", "&"), nil)
	if n := strings.Count(body, `href="./events/`); n != 3 {
		t.Errorf("second page has %d events, want 3", n)
	}
}

func TestUIBulkReplayRunsInTheBackground(t *testing.T) {
	f := newUIFixture(t)
	const n = 7
	for range n {
		f.add(t, `{}`, "", nil, 404)
	}
	f.add(t, `{}`, "", nil, 0) // pending: not matched by state=dead
	_, body := f.do(t, http.MethodGet, "/replay?inbox=shop&state=dead", nil)
	if !strings.Contains(body, `<b id="replay-count">7</b>`) {
		t.Fatalf("confirmation page lacks the count:\n%s", body)
	}
	resp, _ := f.do(t, http.MethodPost, "/replay", url.Values{"inbox": {"shop"}, "state": {"dead"}}, "Sec-Fetch-Site", "same-origin")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "jobs/") {
		t.Fatalf("POST /replay = %d to %q, want 303 to jobs/…", resp.StatusCode, loc)
	}
	waitFor(t, "the replay finished", 5*time.Second, func() bool {
		_, body = f.do(t, http.MethodGet, "/"+loc, nil)
		return strings.Contains(body, "Finished")
	})
	if !strings.Contains(body, `href="../events?inbox=shop&amp;state=dead"`) {
		t.Errorf("job page does not link to its filter's events:\n%s", body)
	}
	if !strings.Contains(body, "7 of 7") {
		t.Errorf("job page does not say 7 of 7:\n%s", body)
	}
	events, _, err := f.db.List(store.Query{Inbox: "shop", State: store.Pending})
	if err != nil || len(events) != n+1 {
		t.Errorf("pending events = %d (%v), want %d", len(events), err, n+1)
	}
}

func TestUIChartCountsTheLastHour(t *testing.T) {
	var c minuteCounts
	now := time.Date(2026, 12, 1, 10, 30, 20, 0, time.UTC)
	c.received(now.Add(-2 * time.Hour)) // outside the hour
	c.received(now.Add(-59 * time.Minute))
	c.received(now)
	c.received(now)
	c.delivered(now)
	c.failed(now.Add(-time.Minute))
	hour := c.lastHour(now)
	if len(hour) != chartMinutes {
		t.Fatalf("%d minutes", len(hour))
	}
	last, before, first := hour[59], hour[58], hour[0]
	if last.Received != 2 || last.Delivered != 1 || before.Failed != 1 || first.Received != 1 {
		t.Errorf("counts: first %+v, before last %+v, last %+v", first, before, last)
	}
	svg := string(chartSVG(hour))
	if !strings.HasPrefix(svg, "<svg") || strings.Count(svg, "<polyline") != 3 || !strings.Contains(svg, "10:30Z: received 2, delivered 1, failed 0") {
		t.Errorf("chart:\n%s", svg)
	}
}

// hookinbox_ui needs no route block: it has its place in the directive
// order, before reverse_proxy and file_server, which would otherwise
// answer its paths.
func TestUIDirectiveAdapts(t *testing.T) {
	for _, tc := range []struct{ name, site string }{
		{"alone", "\thookinbox_ui\n"},
		{"with a matcher before a proxy", "\treverse_proxy 127.0.0.1:3000\n\thookinbox_ui /ops/*\n"},
		{"under a prefix", "\thandle_path /ops/* {\n\t\thookinbox_ui\n\t}\n\tfile_server\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
			out, warnings, err := adapter.Adapt([]byte("example.com {\n"+tc.site+"}\n"), nil)
			if err != nil || len(warnings) > 0 {
				t.Fatalf("adapt: %v %v", err, warnings)
			}
			js := string(out)
			ui := strings.Index(js, `"handler":"hookinbox_ui"`)
			if ui < 0 {
				t.Fatalf("no hookinbox_ui handler in %s", js)
			}
			for _, later := range []string{`"handler":"reverse_proxy"`, `"handler":"file_server"`} {
				if i := strings.Index(js, later); i >= 0 && i < ui {
					t.Errorf("%s comes before hookinbox_ui: %s", later, js)
				}
			}
		})
	}
	var u UIHandler
	if err := u.UnmarshalCaddyfile(caddyfile.NewTestDispenser("hookinbox_ui {\nlisten x\n}")); err == nil {
		t.Error("hookinbox_ui took an option")
	}
}
