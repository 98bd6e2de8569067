package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hookinbox/hookinbox/internal/store"
)

var templateFuncs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return roughDuration(time.Since(t))
	},
	"seconds": func(s float64) string { return roughDuration(time.Duration(s * float64(time.Second))) },
	"query":   query,
	"add":     func(a, b int) int { return a + b },
	"count":   func(m map[store.State]int, s string) int { return m[store.State(s)] },
}

// roughDuration is a duration as a person reads it: 3s, 4m, 2h 5m, 3d 4h.
func roughDuration(d time.Duration) string {
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		s = fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		s = fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

// --- the inboxes ---

type overviewPage struct {
	page
	Inboxes []inboxView
	Chart   template.HTML
	States  []store.State
}

func (d *dashboard) overview(w http.ResponseWriter, r *http.Request) {
	app, db, err := d.app()
	if err != nil {
		d.fail(w, r, 0, err)
		return
	}
	views, err := inboxViews(app, db, time.Now())
	if err != nil {
		d.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	names := make([]string, len(views))
	for i, v := range views {
		names[i] = v.Inbox
	}
	d.render(w, http.StatusOK, "overview", overviewPage{
		page:    newPage(r, "Inboxes", true),
		Inboxes: views,
		Chart:   chartSVG(throughput.lastHour(time.Now())),
		States:  states,
	})
}

// --- the events ---

// eventFilter is the events page's filter, as the user typed it. Inbox,
// state and the time range go to the store's query; the last outcome, its
// status and the sender's event id are checked here, on the redacted view.
type eventFilter struct {
	Inbox    string
	State    string
	Since    string
	Until    string
	Outcome  string
	Status   string
	SenderID string

	query  store.Query
	status func(int) bool
}

// filterFields are the filter's parameters, in the order of the form.
var filterFields = []string{"inbox", "state", "since", "until", "outcome", "status", "sender_id"}

// outcomes are the outcome classes a filter may ask for; "none": no
// attempt yet.
var outcomes = []string{
	store.OutcomeOK, store.OutcomeConnect, store.OutcomeTLS, store.OutcomeTimeout, store.OutcomeReset,
	store.OutcomeRedirect, store.OutcomeClientError, store.OutcomeServerError, "none",
}

func parseFilter(v url.Values, now time.Time) (eventFilter, error) {
	f := eventFilter{
		Inbox: strings.TrimSpace(v.Get("inbox")), State: v.Get("state"),
		Since: strings.TrimSpace(v.Get("since")), Until: strings.TrimSpace(v.Get("until")),
		Outcome: v.Get("outcome"), Status: strings.TrimSpace(v.Get("status")),
		SenderID: strings.TrimSpace(v.Get("sender_id")),
	}
	f.query.Inbox = f.Inbox
	if f.State != "" {
		s, err := parseState(f.State)
		if err != nil {
			return f, err
		}
		f.query.State = s
	}
	var err error
	if f.query.Since, err = parseFormTime("since", f.Since, now); err != nil {
		return f, err
	}
	if f.query.Until, err = parseFormTime("until", f.Until, now); err != nil {
		return f, err
	}
	if !f.query.Since.IsZero() && !f.query.Until.IsZero() && !f.query.Since.Before(f.query.Until) {
		return f, fmt.Errorf("since (%s) must be before until (%s)", f.Since, f.Until)
	}
	if f.Outcome != "" && !slices.Contains(outcomes, f.Outcome) {
		return f, fmt.Errorf("unknown outcome %q (known: %s)", f.Outcome, strings.Join(outcomes, ", "))
	}
	if f.Status != "" {
		if f.status, err = parseStatusFilter(f.Status); err != nil {
			return f, err
		}
	}
	return f, nil
}

// parseFormTime reads a time as the admin API does, or as a browser's
// datetime-local field sends it (taken as UTC).
func parseFormTime(name, s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse("2006-01-02T15:04", s); err == nil {
		return t, nil
	}
	return parseTime(name, s, now)
}

// parseStatusFilter reads a status code (503) or a class of them (5xx).
func parseStatusFilter(s string) (func(int) bool, error) {
	if len(s) == 3 && strings.HasSuffix(strings.ToLower(s), "xx") && s[0] >= '1' && s[0] <= '5' {
		class := int(s[0]-'0') * 100
		return func(n int) bool { return n >= class && n < class+100 }, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 100 || n > 599 {
		return nil, fmt.Errorf("status must be a code such as 503 or a class such as 5xx, got %q", s)
	}
	return func(m int) bool { return m == n }, nil
}

// values is the filter as a link's query.
func (f eventFilter) values() url.Values {
	v := url.Values{}
	for i, s := range []string{f.Inbox, f.State, f.Since, f.Until, f.Outcome, f.Status, f.SenderID} {
		if s != "" {
			v.Set(filterFields[i], s)
		}
	}
	return v
}

// Empty: the filter keeps every event.
func (f eventFilter) Empty() bool { return len(f.values()) == 0 }

// needsAttempts: the filter looks at the last attempt.
func (f eventFilter) needsAttempts() bool { return f.Outcome != "" || f.status != nil }

// eventRow is one event in the list, with its last attempt.
type eventRow struct {
	eventView
	LastOutcome string
	LastStatus  int
}

// match says whether an event the store listed passes the rest of the
// filter, and returns its row.
// The last attempt is read only when the filter or the page needs it.
func (f eventFilter) match(db store.Store, e *store.Event, sv *secretValues, show bool) (eventRow, bool, error) {
	row := eventRow{eventView: newEventView(e, sv)}
	if f.SenderID != "" && !strings.Contains(row.DedupeKey, f.SenderID) {
		return row, false, nil
	}
	if e.Attempts > 0 && (show || f.needsAttempts()) {
		_, attempts, err := db.Get(e.ID)
		if errors.Is(err, store.ErrNotFound) {
			return row, false, nil // deleted meanwhile
		}
		if err != nil {
			return row, false, err
		}
		if n := len(attempts); n > 0 {
			row.LastOutcome, row.LastStatus = attempts[n-1].Outcome, attempts[n-1].Status
		}
	}
	switch {
	case f.Outcome == "none" && row.LastOutcome != "",
		f.Outcome != "" && f.Outcome != "none" && row.LastOutcome != f.Outcome,
		f.status != nil && !f.status(row.LastStatus):
		return row, false, nil
	}
	return row, true, nil
}

// Limits of one events page: how many rows it shows, and how many events
// it may look at for a filter the store cannot apply. A search that hits
// the second limit says so and offers to go on: it never looks empty
// while events further back match.
const (
	pageSize   = 50
	scanBudget = 5000
)

// found is what a walk through the events found.
type found struct {
	Rows []eventRow
	// Next is the cursor of the next page ("" at the end).
	Next string
	// Scanned is how many events were looked at; Partial says the walk
	// stopped at the scan budget before the page was full.
	Scanned int
	Partial bool
	// ScannedTo is the arrival time of the last event looked at.
	ScannedTo time.Time
}

// find walks the events matching f, newest first, from cursor, until it
// has want rows, or has looked at budget events (0: no limit), or the
// store has no more. show: the rows are shown, with their last attempt.
func (f eventFilter) find(db store.Store, sv *secretValues, cursor string, want, budget int, show bool) (found, error) {
	var res found
	q := f.query
	q.Cursor = cursor
	q.Limit = want
	if f.SenderID != "" || f.needsAttempts() {
		q.Limit = 200
	}
	for {
		events, next, err := db.List(q)
		if err != nil {
			return res, err
		}
		for _, e := range events {
			row, ok, err := f.match(db, e, sv, show)
			if err != nil {
				return res, err
			}
			res.Scanned++
			res.ScannedTo = e.ReceivedAt
			if ok {
				res.Rows = append(res.Rows, row)
			}
			if len(res.Rows) == want {
				res.Next = e.ID
				if e.ID == events[len(events)-1].ID {
					res.Next = next
				}
				return res, nil
			}
			if budget > 0 && res.Scanned >= budget {
				res.Next, res.Partial = e.ID, true
				if e.ID == events[len(events)-1].ID && next == "" {
					res.Next, res.Partial = "", false
				}
				return res, nil
			}
		}
		if next == "" {
			return res, nil
		}
		q.Cursor = next
	}
}

type eventsPage struct {
	page
	Filter   eventFilter
	Found    found
	Inboxes  []string
	States   []store.State
	Outcomes []string
	// NextLink and FirstLink are the paging links, ReplayLink the bulk
	// replay of the whole filter.
	NextLink, FirstLink, ReplayLink string
	Cursor                          string
	Deleted                         string
	Error                           string
}

// queryApp parses the page's query and gets the app and its store. When
// it cannot, it has answered with the error page, and ok is false.
func (d *dashboard) queryApp(w http.ResponseWriter, r *http.Request) (app *App, db store.Store, v url.Values, ok bool) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, fmt.Errorf("invalid query: %v", err))
		return nil, nil, nil, false
	}
	if app, db, err = d.app(); err != nil {
		d.fail(w, r, 0, err)
		return nil, nil, nil, false
	}
	return app, db, v, true
}

func (d *dashboard) events(w http.ResponseWriter, r *http.Request) {
	app, db, v, ok := d.queryApp(w, r)
	if !ok {
		return
	}
	p := eventsPage{
		page:     newPage(r, "Events", true),
		States:   states,
		Outcomes: outcomes,
		Deleted:  v.Get("deleted"),
		Cursor:   v.Get("cursor"),
	}
	p.Inboxes = inboxNames(app, db)
	f, err := parseFilter(v, time.Now())
	p.Filter = f
	if err != nil {
		p.Error = err.Error()
		d.render(w, http.StatusBadRequest, "events", p)
		return
	}
	p.Found, err = f.find(db, app.engine.secretValues(), p.Cursor, pageSize, scanBudget, true)
	if errors.Is(err, store.ErrBadCursor) {
		p.Error = badCursor
		d.render(w, http.StatusBadRequest, "events", p)
		return
	}
	if err != nil {
		d.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	fv := f.values()
	p.FirstLink = "events" + query(fv)
	p.ReplayLink = "replay" + query(fv)
	if p.Found.Next != "" {
		nv := f.values()
		nv.Set("cursor", p.Found.Next)
		p.NextLink = "events" + query(nv)
	}
	d.render(w, http.StatusOK, "events", p)
}

// inboxNames lists the inboxes for the filter's choice.
func inboxNames(app *App, db store.Store) []string {
	views, err := inboxViews(app, db, time.Now())
	if err != nil {
		return nil
	}
	names := make([]string, len(views))
	for i, v := range views {
		names[i] = v.Inbox
	}
	return names
}

// --- one event ---

type eventPage struct {
	page
	Event eventDetail
	// Body is the body as shown: indented when it is JSON.
	Body     string
	BodyKind string
	Headers  []headerLine
	Next     string
	Attempts []attemptView
}

type headerLine struct{ Name, Value string }

// pathEvent reads the event the path names, with its attempts. When it
// cannot, it has answered with the error page, and ok is false.
func (d *dashboard) pathEvent(w http.ResponseWriter, r *http.Request) (app *App, e *store.Event, attempts []store.Attempt, ok bool) {
	app, db, err := d.app()
	if err != nil {
		d.fail(w, r, 0, err)
		return nil, nil, nil, false
	}
	id := r.PathValue("id")
	if e, attempts, err = db.Get(id); err != nil {
		d.fail(w, r, 0, storeError(id, err))
		return nil, nil, nil, false
	}
	return app, e, attempts, true
}

func (d *dashboard) event(w http.ResponseWriter, r *http.Request) {
	app, e, attempts, ok := d.pathEvent(w, r)
	if !ok {
		return
	}
	detail := newEventDetail(e, attempts, app.engine.secretValues())
	p := eventPage{page: newPage(r, "Event "+e.ID, true), Event: detail, Next: whatNext(app, e, time.Now())}
	p.Body, p.BodyKind = detail.Body, detail.BodyEncoding
	if detail.BodyEncoding == "text" && json.Valid([]byte(detail.Body)) {
		var buf bytes.Buffer
		if json.Indent(&buf, []byte(detail.Body), "", "  ") == nil {
			p.Body, p.BodyKind = buf.String(), "json"
		}
	}
	for _, name := range sortedKeys(detail.Header) {
		for _, value := range detail.Header[name] {
			p.Headers = append(p.Headers, headerLine{name, value})
		}
	}
	// Newest attempt first, as the events are listed.
	p.Attempts = slices.Clone(detail.History)
	slices.Reverse(p.Attempts)
	d.render(w, http.StatusOK, "event", p)
}

// whatNext says in words what happens to e next.
func whatNext(app *App, e *store.Event, now time.Time) string {
	keep := time.Duration(app.Retention)
	switch e.State {
	case store.Delivering:
		return "An attempt is in flight now."
	case store.Delivered:
		return fmt.Sprintf("Delivered %s. Kept in the history until %s; replay delivers it again.",
			templateFuncs["ago"].(func(time.Time) string)(e.FinishedAt), e.FinishedAt.Add(keep).UTC().Format(time.RFC3339))
	case store.Dead:
		return fmt.Sprintf("Dead since %s: every attempt failed and no other is scheduled. Kept until %s; replay delivers it again with a fresh retry schedule.",
			e.FinishedAt.UTC().Format(time.RFC3339), e.FinishedAt.Add(keep).UTC().Format(time.RFC3339))
	}
	s := "Attempt " + strconv.Itoa(e.Attempts+1)
	if in, ok := app.inbox(e.Inbox); ok && len(in.Retry) > 0 {
		s += " of " + strconv.Itoa(e.ReplayedAfter+len(in.Retry)+1)
	}
	if !e.NextAttemptAt.After(now) {
		return s + " is due now."
	}
	return fmt.Sprintf("%s at %s (%s).", s, e.NextAttemptAt.UTC().Format(time.RFC3339), roughDuration(now.Sub(e.NextAttemptAt)))
}

func (d *dashboard) replayEvent(w http.ResponseWriter, r *http.Request) {
	app, db, err := d.app()
	if err != nil {
		d.fail(w, r, 0, err)
		return
	}
	id := r.PathValue("id")
	if err := db.Replay(id, time.Now()); err != nil {
		d.fail(w, r, 0, storeError(id, err))
		return
	}
	if e, _, err := db.Get(id); err == nil {
		app.engine.probe(e.Inbox)
	}
	seeOther(w, "../"+url.PathEscape(id))
}

type deletePage struct {
	page
	Event eventView
}

func (d *dashboard) confirmDelete(w http.ResponseWriter, r *http.Request) {
	app, e, _, ok := d.pathEvent(w, r)
	if !ok {
		return
	}
	d.render(w, http.StatusOK, "delete", deletePage{
		page:  newPage(r, "Delete event "+e.ID, false),
		Event: newEventView(e, app.engine.secretValues()),
	})
}

func (d *dashboard) deleteEvent(w http.ResponseWriter, r *http.Request) {
	_, db, err := d.app()
	if err != nil {
		d.fail(w, r, 0, err)
		return
	}
	id := r.PathValue("id")
	if err := db.Delete(id); err != nil {
		d.fail(w, r, 0, storeError(id, err))
		return
	}
	if r.Method == http.MethodDelete {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	seeOther(w, "../../events"+query(url.Values{"deleted": {id}}))
}

// --- bulk replay ---

type replayPage struct {
	page
	Filter eventFilter
	Count  int
	Fields []hiddenField
	Back   string
}

type hiddenField struct{ Name, Value string }

func (d *dashboard) confirmReplay(w http.ResponseWriter, r *http.Request) {
	app, db, v, ok := d.queryApp(w, r)
	if !ok {
		return
	}
	f, err := parseFilter(v, time.Now())
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err)
		return
	}
	ids, err := f.replayable(db, app.engine.secretValues())
	if err != nil {
		d.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	p := replayPage{page: newPage(r, "Replay events", false), Filter: f, Count: len(ids), Back: "events" + query(f.values())}
	for _, name := range filterFields {
		if s := f.values().Get(name); s != "" {
			p.Fields = append(p.Fields, hiddenField{name, s})
		}
	}
	d.render(w, http.StatusOK, "replay", p)
}

// replayable lists every event matching f that a bulk replay replays:
// all but those being delivered at this moment.
func (f eventFilter) replayable(db store.Store, sv *secretValues) ([]replayTarget, error) {
	res, err := f.find(db, sv, "", 1<<30, 0, false)
	if err != nil {
		return nil, err
	}
	targets := make([]replayTarget, 0, len(res.Rows))
	for _, row := range res.Rows {
		if row.State != store.Delivering {
			targets = append(targets, replayTarget{row.ID, row.Inbox})
		}
	}
	return targets, nil
}

// replayTarget is one event a bulk replay replays.
type replayTarget struct{ ID, Inbox string }

func (d *dashboard) startReplay(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		d.fail(w, r, http.StatusBadRequest, err)
		return
	}
	app, db, err := d.app()
	if err != nil {
		d.fail(w, r, 0, err)
		return
	}
	// Relative times are read again now: the user confirmed "the last
	// hour", not the hour before the confirmation page.
	f, err := parseFilter(r.PostForm, time.Now())
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err)
		return
	}
	ids, err := f.replayable(db, app.engine.secretValues())
	if err != nil {
		d.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	job := replayJobs.start(app, db, f, ids)
	seeOther(w, "jobs/"+job.ID)
}

type jobPage struct {
	page
	Job    jobStatus
	Events string
}

func (d *dashboard) job(w http.ResponseWriter, r *http.Request) {
	job, ok := replayJobs.get(r.PathValue("id"))
	if !ok {
		d.fail(w, r, http.StatusNotFound, errors.New("no such replay: the server may have restarted since"))
		return
	}
	st := job.status()
	d.render(w, http.StatusOK, "job", jobPage{
		page:   newPage(r, "Replay "+st.ID, !st.Done),
		Job:    st,
		Events: "events" + query(st.Filter.values()),
	})
}
