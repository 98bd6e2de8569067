package caddymodule

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/hookinbox/hookinbox/internal/store"
)

// The dashboard (SPEC.md, "Dashboard"): one http.Handler, served at
// /hookinbox/ui/ on Caddy's admin endpoint and by the hookinbox_ui handler
// directive in a site. Its routes, below its mount point:
//
//	GET  /                          the inboxes and the chart of the last hour
//	GET  /events?<filter>&cursor=   events, newest first, paged
//	GET  /events/{id}               one event: request, attempts, what happens next
//	POST /events/{id}/replay        deliver again now
//	GET  /events/{id}/delete        the confirmation page
//	POST /events/{id}/delete        forget the event
//	GET  /replay?<filter>           how many events a bulk replay would replay
//	POST /replay                    start replaying them in the background
//	GET  /jobs/{id}                 a bulk replay's progress
//	GET  /assets/{name}             the CSS, the script, the icon
//
// Every link is relative, so it works under any path prefix. It shows only
// the redacted views of the admin API (eventView, eventDetail).

func init() {
	caddy.RegisterModule(UIHandler{})
	httpcaddyfile.RegisterHandlerDirective("hookinbox_ui", parseUIDirective)
	// It answers by itself, as metrics does, so it needs no route block.
	httpcaddyfile.RegisterDirectiveOrder("hookinbox_ui", httpcaddyfile.After, "metrics")
}

//go:embed ui
var uiFiles embed.FS

// adminUIPath is where the admin endpoint serves the dashboard.
const adminUIPath = "/hookinbox/ui/"

// contentSecurityPolicy lets a page load only the dashboard's own files:
// no inline script, no eval, no framing.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

// appSource finds the hookinbox app the dashboard shows, and its store.
type appSource func() (*App, store.Store, error)

// dashboard is the dashboard's handler.
type dashboard struct {
	app   appSource
	pages map[string]*template.Template
	mux   *http.ServeMux
	// protect refuses a cross-origin request that changes state.
	protect *http.CrossOriginProtection
	// routes is mux behind protect.
	routes http.Handler
}

func newDashboard(app appSource) *dashboard {
	d := &dashboard{app: app, pages: parsePages(), protect: http.NewCrossOriginProtection()}
	d.protect.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.fail(w, r, http.StatusForbidden, errors.New("cross-origin request refused: a change must come from the dashboard's own page"))
	}))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.overview)
	mux.HandleFunc("GET /events", d.events)
	mux.HandleFunc("GET /events/{id}", d.event)
	mux.HandleFunc("POST /events/{id}/replay", d.replayEvent)
	mux.HandleFunc("GET /events/{id}/delete", d.confirmDelete)
	mux.HandleFunc("POST /events/{id}/delete", d.deleteEvent)
	mux.HandleFunc("DELETE /events/{id}", d.deleteEvent)
	mux.HandleFunc("GET /replay", d.confirmReplay)
	mux.HandleFunc("POST /replay", d.startReplay)
	mux.HandleFunc("GET /jobs/{id}", d.job)
	mux.HandleFunc("GET /assets/{name}", d.asset)
	mux.HandleFunc("/", d.notFound)
	d.mux = mux
	d.routes = d.protect.Handler(mux)
	return d
}

// ServeHTTP sets the security headers of every answer, refuses
// cross-origin changes, then routes.
func (d *dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.URL.Path == "" {
		r.URL.Path = "/"
	}
	d.routes.ServeHTTP(w, r)
}

// notFound answers what no route took: 405 for a path that exists with
// other methods (a GET to an action), else 404. The catch-all route keeps
// the mux from answering 405 by itself, so this asks it which methods
// the path has.
func (d *dashboard) notFound(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := d.mux.Handler(probe); pattern != "/" && pattern != "" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		d.fail(w, r, http.StatusMethodNotAllowed, fmt.Errorf("%s is not allowed here (allowed: %s): a change is a POST from the dashboard's own page", r.Method, strings.Join(allowed, ", ")))
		return
	}
	d.fail(w, r, http.StatusNotFound, fmt.Errorf("no page at %s", r.URL.Path))
}

// adminDashboard serves the dashboard on the admin endpoint. The admin
// endpoint is replaced at every config reload, so it looks up the active
// app per request, as the admin API does.
func adminDashboard() caddy.AdminHandlerFunc {
	d := http.StripPrefix(strings.TrimSuffix(adminUIPath, "/"), newDashboard(activeApp))
	return func(w http.ResponseWriter, r *http.Request) error {
		d.ServeHTTP(w, r)
		return nil
	}
}

// UIHandler serves the dashboard in a site, where a user puts it behind
// their own authentication:
//
//	example.com {
//		basic_auth /ops/* { admin <hash> }
//		handle_path /ops/* {
//			hookinbox_ui
//		}
//	}
//
// It shows every inbox of the hookinbox app, whichever site receives them.
type UIHandler struct {
	dash *dashboard
}

// CaddyModule returns the Caddy module information.
func (UIHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.hookinbox_ui",
		New: func() caddy.Module { return new(UIHandler) },
	}
}

// Provision finds the hookinbox app.
func (h *UIHandler) Provision(ctx caddy.Context) error {
	appIface, err := ctx.App("hookinbox")
	if err != nil {
		return fmt.Errorf("getting hookinbox app: %v", err)
	}
	app := appIface.(*App)
	h.dash = newDashboard(func() (*App, store.Store, error) {
		db := app.engine.store()
		if db == nil {
			return nil, nil, apiError(http.StatusServiceUnavailable, "the hookinbox store is not open")
		}
		return app, db, nil
	})
	return nil
}

// ServeHTTP serves the dashboard; it never passes the request on.
func (h *UIHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if to, ok := slashRedirect(r); ok {
		w.Header().Set("Location", to)
		w.WriteHeader(http.StatusPermanentRedirect)
		return nil
	}
	h.dash.ServeHTTP(w, r)
	return nil
}

// slashRedirect: mounted with handle_path /ops/*, a request for /ops
// reaches the dashboard as its root, where relative links would resolve
// above it. It goes to /ops/ instead.
func slashRedirect(r *http.Request) (string, bool) {
	if r.URL.Path != "" && r.URL.Path != "/" {
		return "", false
	}
	orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request)
	if !ok || orig.URL == nil || strings.HasSuffix(orig.URL.Path, "/") {
		return "", false
	}
	to := path.Base(orig.URL.Path) + "/"
	if orig.URL.RawQuery != "" {
		to += "?" + orig.URL.RawQuery
	}
	return "./" + to, true
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	hookinbox_ui [<matcher>]
func (h *UIHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive's name
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Err("hookinbox_ui takes no options")
	}
	return nil
}

func parseUIDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var u UIHandler
	err := u.UnmarshalCaddyfile(h.Dispenser)
	return &u, err
}

// page is what every page's template reads.
type page struct {
	Title string
	// Base leads from the page to the dashboard's root ("./", "../"):
	// every link starts with it, so the dashboard works under any prefix.
	Base string
	// Refresh: the page reloads its content while it is visible.
	Refresh bool
	Now     time.Time
}

// newPage is the page at r's path, below the dashboard's root.
func newPage(r *http.Request, title string, refresh bool) page {
	base := "./"
	if depth := strings.Count(strings.TrimPrefix(r.URL.Path, "/"), "/"); depth > 0 {
		base = strings.Repeat("../", depth)
	}
	return page{Title: title, Base: base, Refresh: refresh, Now: time.Now().UTC()}
}

// parsePages parses each page with the layout it fills.
func parsePages() map[string]*template.Template {
	pages := map[string]*template.Template{}
	names, err := fs.Glob(uiFiles, "ui/*.html")
	if err != nil {
		panic(err)
	}
	for _, name := range names {
		base := path.Base(name)
		if base == "layout.html" {
			continue
		}
		t := template.Must(template.New(base).Funcs(templateFuncs).ParseFS(uiFiles, "ui/layout.html", name))
		pages[strings.TrimSuffix(base, ".html")] = t
	}
	return pages
}

// render writes a page; it is built in memory first so that a template
// error is a clean 500, not half a page.
func (d *dashboard) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := d.pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		http.Error(w, "rendering the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

type errorPage struct {
	page
	Status  int
	Message string
}

// fail answers with an error page; an admin API error keeps its status.
func (d *dashboard) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	var apiErr caddy.APIError
	if errors.As(err, &apiErr) {
		status = apiErr.HTTPStatus
		if apiErr.Message != "" {
			err = errors.New(apiErr.Message)
		}
	}
	d.render(w, status, "error", errorPage{
		page:    newPage(r, http.StatusText(status), false),
		Status:  status,
		Message: err.Error(),
	})
}

// seeOther sends the browser on after a change, to a link relative to
// the request's own path (http.Redirect would make it absolute, which is
// wrong under a prefix the handler does not see).
func seeOther(w http.ResponseWriter, relative string) {
	w.Header().Set("Location", relative)
	w.WriteHeader(http.StatusSeeOther)
}

var assetTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
	".svg": "image/svg+xml",
}

func (d *dashboard) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	ctype, ok := assetTypes[path.Ext(name)]
	if !ok || strings.Contains(name, "/") {
		d.fail(w, r, http.StatusNotFound, fmt.Errorf("no asset %s", name))
		return
	}
	b, err := uiFiles.ReadFile("ui/" + name)
	if err != nil {
		d.fail(w, r, http.StatusNotFound, fmt.Errorf("no asset %s", name))
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}

// query builds a link's query string.
func query(v url.Values) string {
	if s := v.Encode(); s != "" {
		return "?" + s
	}
	return ""
}

// Interface guards
var (
	_ caddy.Provisioner           = (*UIHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*UIHandler)(nil)
	_ caddyfile.Unmarshaler       = (*UIHandler)(nil)
	_ http.Handler                = (*dashboard)(nil)
)
