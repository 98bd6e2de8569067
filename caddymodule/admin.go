package caddymodule

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"

	"github.com/hookinbox/hookinbox/internal/store"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves hookinbox's routes on Caddy's admin endpoint:
//
//	GET    /hookinbox/inboxes                    each inbox: counts by state, oldest pending, breaker
//	GET    /hookinbox/events?inbox=&state=&since=&until=&limit=&cursor=
//	                                             events, newest first, paged
//	GET    /hookinbox/events/<id>                one event: headers, body, every attempt
//	POST   /hookinbox/events/<id>/replay         deliver again now (any state)
//	POST   /hookinbox/inboxes/<inbox>/replay?state=dead
//	                                             bulk replay; answers {"replayed": n}
//	DELETE /hookinbox/events/<id>                forget one event
//	       /hookinbox/ui/                        the dashboard (ui.go)
//
// Admin modules are provisioned before the apps and never cleaned up, so it
// keeps no reference to the app or its store: each request looks up the
// active config's hookinbox app.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.hookinbox",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes returns the admin routes of hookinbox, the dashboard's included.
// Each path also has a route without a method, so a wrong method is
// answered 405 in JSON like every other error of the API, and the
// catch-all answers 404 the same way.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	route := func(pattern string, h caddy.AdminHandlerFunc) caddy.AdminRoute {
		return caddy.AdminRoute{Pattern: pattern, Handler: h}
	}
	return []caddy.AdminRoute{
		route("GET /hookinbox/inboxes", a.inboxes),
		route("/hookinbox/inboxes", methodNotAllowed(http.MethodGet)),
		route("POST /hookinbox/inboxes/{inbox}/replay", a.replayInbox),
		route("/hookinbox/inboxes/{inbox}/replay", methodNotAllowed(http.MethodPost)),
		route("GET /hookinbox/events", a.listEvents),
		route("/hookinbox/events", methodNotAllowed(http.MethodGet)),
		route("GET /hookinbox/events/{id}", a.showEvent),
		route("DELETE /hookinbox/events/{id}", a.deleteEvent),
		route("/hookinbox/events/{id}", methodNotAllowed(http.MethodGet, http.MethodDelete)),
		route("POST /hookinbox/events/{id}/replay", a.replayEvent),
		route("/hookinbox/events/{id}/replay", methodNotAllowed(http.MethodPost)),
		route(adminUIPath, adminDashboard()),
		route("/hookinbox/", func(w http.ResponseWriter, r *http.Request) error {
			return apiError(http.StatusNotFound, "resource not found: %s", r.URL.Path)
		}),
	}
}

// methodNotAllowed answers 405 with the methods a route takes.
func methodNotAllowed(allowed ...string) caddy.AdminHandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		return apiError(http.StatusMethodNotAllowed, "method not allowed: %s", r.Method)
	}
}

// apiError is an error Caddy's admin endpoint answers as {"error": "..."}.
func apiError(status int, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return caddy.APIError{HTTPStatus: status, Err: err, Message: err.Error()}
}

// activeApp returns the running config's hookinbox app and its open store.
func activeApp() (*App, store.Store, error) {
	appIface, err := caddy.ActiveContext().AppIfConfigured("hookinbox")
	if err != nil {
		return nil, nil, apiError(http.StatusServiceUnavailable, "no active hookinbox app: %v", err)
	}
	app, ok := appIface.(*App)
	if !ok || app.engine == nil {
		return nil, nil, apiError(http.StatusServiceUnavailable, "no active hookinbox app")
	}
	db := app.engine.store()
	if db == nil {
		return nil, nil, apiError(http.StatusServiceUnavailable, "the hookinbox store is not open")
	}
	return app, db, nil
}

// inboxView is one inbox as GET /hookinbox/inboxes shows it.
type inboxView struct {
	Inbox string `json:"inbox"`
	// Configured: a handler of the running config receives this inbox's
	// events. An inbox that is not configured only has history.
	Configured bool `json:"configured"`
	// Forward is where events are delivered, without credentials or query.
	Forward string              `json:"forward,omitempty"`
	Counts  map[store.State]int `json:"counts"`
	// OldestPending is when the oldest event waiting for delivery arrived.
	OldestPending        *time.Time   `json:"oldest_pending,omitempty"`
	OldestPendingSeconds float64      `json:"oldest_pending_age_seconds"`
	Breaker              *breakerView `json:"breaker,omitempty"`
}

type breakerView struct {
	State    string    `json:"state"`
	Since    time.Time `json:"since"`
	Failures int       `json:"failures"`
}

func (a *adminAPI) inboxes(w http.ResponseWriter, r *http.Request) error {
	if err := noParameters(r); err != nil {
		return err
	}
	app, db, err := activeApp()
	if err != nil {
		return err
	}
	views, err := inboxViews(app, db, time.Now())
	if err != nil {
		return apiError(http.StatusInternalServerError, "%v", err)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"inboxes": views})
}

// inboxViews joins the store's statistics with the configured inboxes and
// their circuit breakers, sorted by name.
func inboxViews(app *App, db store.Store, now time.Time) ([]inboxView, error) {
	stats, err := db.Inboxes()
	if err != nil {
		return nil, err
	}
	breakers := app.engine.breakers()
	byName := map[string]*inboxView{}
	view := func(name string) *inboxView {
		v := byName[name]
		if v == nil {
			v = &inboxView{Inbox: name, Counts: map[store.State]int{
				store.Pending: 0, store.Delivering: 0, store.Delivered: 0, store.Dead: 0,
			}}
			byName[name] = v
		}
		return v
	}
	for _, s := range stats {
		v := view(s.Inbox)
		for state, n := range s.Counts {
			v.Counts[state] = n
		}
		if !s.OldestPending.IsZero() {
			t := s.OldestPending
			v.OldestPending = &t
			v.OldestPendingSeconds = max(now.Sub(t).Seconds(), 0)
		}
	}
	for _, name := range configuredInboxes(app) {
		v := view(name)
		v.Configured = true
		if in, ok := app.inbox(name); ok {
			v.Forward = displayURL(in.Forward)
		}
	}
	for name, b := range breakers {
		view(name).Breaker = &breakerView{State: b.State, Since: b.Since, Failures: b.Failures}
	}
	names := make([]string, 0, len(byName))
	for name := range byName {
		names = append(names, name)
	}
	slices.Sort(names)
	views := make([]inboxView, len(names))
	for i, name := range names {
		views[i] = *byName[name]
	}
	return views, nil
}

// configuredInboxes lists the inbox names of app's config.
func configuredInboxes(app *App) []string {
	names := make([]string, 0, len(app.inboxes))
	for name := range app.inboxes {
		names = append(names, name)
	}
	return names
}

// displayURL is a forward URL without what may be a credential: its user
// information and its query.
func displayURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	u.User = nil
	u.RawQuery, u.ForceQuery = "", false
	u.Fragment = ""
	return u.String()
}

// eventView is an event without its body and attempts, as listed.
type eventView struct {
	ID            string      `json:"id"`
	Inbox         string      `json:"inbox"`
	State         store.State `json:"state"`
	ReceivedAt    time.Time   `json:"received_at"`
	Attempts      int         `json:"attempts"`
	NextAttemptAt *time.Time  `json:"next_attempt_at,omitempty"`
	FinishedAt    *time.Time  `json:"finished_at,omitempty"`
	Method        string      `json:"method"`
	Path          string      `json:"path"`
	Verified      string      `json:"verified"`
	DedupeKey     string      `json:"dedupe_key,omitempty"`
}

// newEventView shows e with the secrets of sv hidden: a path or a sender's
// event id can hold one too.
func newEventView(e *store.Event, sv *secretValues) eventView {
	v := eventView{
		ID:         e.ID,
		Inbox:      e.Inbox,
		State:      e.State,
		ReceivedAt: e.ReceivedAt,
		Attempts:   e.Attempts,
		Method:     e.Method,
		Path:       sv.hideString(e.Path),
		Verified:   e.Verified,
		DedupeKey:  sv.hideString(e.DedupeKey),
	}
	if !e.NextAttemptAt.IsZero() && e.State == store.Pending {
		t := e.NextAttemptAt
		v.NextAttemptAt = &t
	}
	if !e.FinishedAt.IsZero() {
		t := e.FinishedAt
		v.FinishedAt = &t
	}
	return v
}

func (a *adminAPI) listEvents(w http.ResponseWriter, r *http.Request) error {
	v, err := queryOf(r)
	if err != nil {
		return err
	}
	q, err := parseEventQuery(v, time.Now())
	if err != nil {
		return apiError(http.StatusBadRequest, "%v", err)
	}
	app, db, err := activeApp()
	if err != nil {
		return err
	}
	events, next, err := db.List(q)
	if errors.Is(err, store.ErrBadCursor) {
		return apiError(http.StatusBadRequest, "%s", badCursor)
	}
	if err != nil {
		return apiError(http.StatusInternalServerError, "%v", err)
	}
	sv := app.engine.secretValues()
	views := make([]eventView, len(events))
	for i, e := range events {
		views[i] = newEventView(e, sv)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"events": views, "next_cursor": next})
}

// maxListLimit is the largest page the store hands out.
const maxListLimit = 1000

// badCursor is the answer to a cursor the store did not hand out.
const badCursor = "invalid cursor: pass the next_cursor of the previous page"

// parseEventQuery reads the filters of GET /hookinbox/events. Times are
// RFC 3339, or a duration meaning that long before now (since=1h).
func parseEventQuery(v url.Values, now time.Time) (store.Query, error) {
	if err := checkParameters(v, "inbox", "state", "since", "until", "limit", "cursor"); err != nil {
		return store.Query{}, err
	}
	q := store.Query{Inbox: v.Get("inbox"), Cursor: v.Get("cursor")}
	if s := v.Get("state"); s != "" {
		state, err := parseState(s)
		if err != nil {
			return q, err
		}
		q.State = state
	}
	var err error
	if q.Since, err = parseTime("since", v.Get("since"), now); err != nil {
		return q, err
	}
	if q.Until, err = parseTime("until", v.Get("until"), now); err != nil {
		return q, err
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return q, fmt.Errorf("since (%s) must be before until (%s)", v.Get("since"), v.Get("until"))
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListLimit {
			return q, fmt.Errorf("limit must be a whole number from 1 to %d, got %q", maxListLimit, s)
		}
		q.Limit = n
	}
	if c := q.Cursor; len(c) > 64 || strings.IndexFunc(c, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z')
	}) >= 0 {
		return q, errors.New(badCursor)
	}
	return q, nil
}

// queryOf parses r's query. r.URL.Query drops what it cannot parse, which
// would turn a mistyped filter (cursor=%zz) into no filter at all.
func queryOf(r *http.Request) (url.Values, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, apiError(http.StatusBadRequest, "invalid query: %v", err)
	}
	return v, nil
}

// noParameters refuses any query parameter, for the routes that take none:
// a parameter there is a mistake the caller should hear about.
func noParameters(r *http.Request) error {
	v, err := queryOf(r)
	if err != nil {
		return err
	}
	if err := checkParameters(v); err != nil {
		return apiError(http.StatusBadRequest, "%v", err)
	}
	return nil
}

// checkParameters refuses a query parameter that is not among known, or is
// given twice: url.Values.Get would silently use the first value.
func checkParameters(v url.Values, known ...string) error {
	for name, values := range v {
		if len(known) == 0 {
			return fmt.Errorf("unknown parameter %q (this route takes none)", name)
		}
		if !slices.Contains(known, name) {
			return fmt.Errorf("unknown parameter %q (known: %s)", name, strings.Join(known, ", "))
		}
		if len(values) > 1 {
			return fmt.Errorf("parameter %s given %d times; give it once", name, len(values))
		}
	}
	return nil
}

var states = []store.State{store.Pending, store.Delivering, store.Delivered, store.Dead}

func parseState(s string) (store.State, error) {
	for _, st := range states {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("unknown state %q (known: pending, delivering, delivered, dead)", s)
}

func parseTime(name, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := caddy.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%s must be an RFC 3339 time or a duration before now (such as 1h), got %q", name, s)
}

// eventDetail is one event in full, with its secrets redacted.
type eventDetail struct {
	eventView
	RawQuery string      `json:"raw_query,omitempty"`
	Header   http.Header `json:"header"`
	// Body is the request body as text when it is valid UTF-8, else in
	// base64; BodyEncoding says which ("text" or "base64").
	Body         string `json:"body"`
	BodyEncoding string `json:"body_encoding"`
	// BodyRedacted: a secret in the body was replaced by [redacted].
	BodyRedacted bool          `json:"body_redacted,omitempty"`
	History      []attemptView `json:"history"`
}

// attemptView is one delivery attempt, with a hint of what to check.
type attemptView struct {
	N          int       `json:"n"`
	At         time.Time `json:"at"`
	Duration   string    `json:"duration"`
	DurationMS float64   `json:"duration_ms"`
	Outcome    string    `json:"outcome"`
	Status     int       `json:"status,omitempty"`
	// Response is the first 1 KiB of the app's answer, as text or base64
	// (ResponseEncoding).
	Response         string `json:"response,omitempty"`
	ResponseEncoding string `json:"response_encoding,omitempty"`
	Error            string `json:"error,omitempty"`
	Hint             string `json:"hint,omitempty"`
}

// outcomeHints say what to check after a failed attempt, per outcome
// class, after the senders' own troubleshooting tables.
var outcomeHints = map[string]string{
	store.OutcomeConnect:     "unable to connect: is the app running and listening on the forward address?",
	store.OutcomeRedirect:    "the app answered with a redirect; point forward at the final URL",
	store.OutcomeClientError: "the app refused the event (4xx): check the forward path and method, and the app's own authentication and payload validation",
	store.OutcomeServerError: "the app failed while handling the event (5xx): check the app's logs at the attempt's time",
	store.OutcomeTLS:         "the TLS handshake failed: check the app's certificate (expired, self-signed, wrong name) and whether forward should be http or https",
	store.OutcomeTimeout:     "the app did not answer within timeout: answer at once and do the work afterwards, or raise timeout",
	store.OutcomeReset:       "the connection closed before the whole answer came (the status, if one came, is kept): check that the app does not crash or drop the connection while handling the event",
}

// hintFor is the hint for an outcome class ("" for ok and unknown classes).
func hintFor(outcome string) string { return outcomeHints[outcome] }

// newEventDetail shows e and its attempts with their secrets redacted: by
// name (redact.go), then every value of sv wherever it stands, the app's
// answers included, since an app may echo the request. The body is
// redacted before it is turned into base64, which would hide a secret from
// a search but not from a reader.
func newEventDetail(e *store.Event, attempts []store.Attempt, sv *secretValues) eventDetail {
	d := eventDetail{
		eventView: newEventView(e, sv),
		RawQuery:  sv.hideQuery(redactQuery(e.RawQuery)),
		Header:    sv.hideHeader(redactHeader(e.Header)),
		History:   make([]attemptView, len(attempts)),
	}
	body, byName := redactBody(e.Body, e.Verified)
	body, byValue := sv.hide(body)
	d.Body, d.BodyEncoding = textOrBase64(body)
	d.BodyRedacted = byName || byValue
	for i, a := range attempts {
		v := attemptView{
			N:          a.N,
			At:         a.At,
			Duration:   a.Duration.Round(time.Millisecond).String(),
			DurationMS: float64(a.Duration) / float64(time.Millisecond),
			Outcome:    a.Outcome,
			Status:     a.Status,
			Error:      sv.hideString(a.Error),
			Hint:       hintFor(a.Outcome),
		}
		if len(a.Response) > 0 {
			response, _ := sv.hide(a.Response)
			v.Response, v.ResponseEncoding = textOrBase64(response)
		}
		d.History[i] = v
	}
	return d
}

func textOrBase64(b []byte) (string, string) {
	if utf8.Valid(b) {
		return string(b), "text"
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}

func (a *adminAPI) showEvent(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := noParameters(r); err != nil {
		return err
	}
	app, db, err := activeApp()
	if err != nil {
		return err
	}
	e, attempts, err := db.Get(id)
	if err != nil {
		return storeError(id, err)
	}
	return writeJSON(w, http.StatusOK, newEventDetail(e, attempts, app.engine.secretValues()))
}

func (a *adminAPI) replayEvent(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := noParameters(r); err != nil {
		return err
	}
	app, db, err := activeApp()
	if err != nil {
		return err
	}
	if err := db.Replay(id, time.Now()); err != nil {
		return storeError(id, err)
	}
	if e, _, err := db.Get(id); err == nil {
		app.engine.probe(e.Inbox)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"id": id, "replayed": 1})
}

func (a *adminAPI) replayInbox(w http.ResponseWriter, r *http.Request) error {
	inbox := r.PathValue("inbox")
	v, err := queryOf(r)
	if err != nil {
		return err
	}
	if err := checkParameters(v, "state"); err != nil {
		return apiError(http.StatusBadRequest, "%v", err)
	}
	state := store.Dead
	if s := v.Get("state"); s != "" {
		var err error
		if state, err = parseState(s); err != nil {
			return apiError(http.StatusBadRequest, "%v", err)
		}
	}
	if state == store.Delivering {
		return apiError(http.StatusBadRequest, "events being delivered cannot be replayed in bulk; replay them one by one")
	}
	app, db, err := activeApp()
	if err != nil {
		return err
	}
	if !knownInbox(app, db, inbox) {
		return apiError(http.StatusNotFound, "unknown inbox %q", inbox)
	}
	n, err := db.ReplayInbox(inbox, state, time.Now())
	if err != nil {
		return apiError(http.StatusInternalServerError, "%v", err)
	}
	app.engine.probe(inbox)
	return writeJSON(w, http.StatusOK, map[string]any{"inbox": inbox, "state": state, "replayed": n})
}

// knownInbox says whether inbox is configured or has stored events.
func knownInbox(app *App, db store.Store, inbox string) bool {
	if _, ok := app.inbox(inbox); ok {
		return true
	}
	stats, err := db.Inboxes()
	if err != nil {
		return true // let the store answer
	}
	return slices.ContainsFunc(stats, func(s store.InboxStats) bool { return s.Inbox == inbox })
}

func (a *adminAPI) deleteEvent(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := noParameters(r); err != nil {
		return err
	}
	_, db, err := activeApp()
	if err != nil {
		return err
	}
	if err := db.Delete(id); err != nil {
		return storeError(id, err)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"id": id, "deleted": true})
}

// storeError is the admin API's answer to a failed store call on one event.
func storeError(id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return apiError(http.StatusNotFound, "event %s not found", id)
	}
	return apiError(http.StatusInternalServerError, "%v", err)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return apiError(http.StatusInternalServerError, "encoding the answer: %v", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err = w.Write(append(body, '\n'))
	return err
}

// Interface guard
var _ caddy.AdminRouter = (*adminAPI)(nil)
