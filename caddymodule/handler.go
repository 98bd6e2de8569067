package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/hookinbox/hookinbox/internal/deliver"
	"github.com/hookinbox/hookinbox/internal/store"
	"github.com/hookinbox/hookinbox/internal/throttle"
	"github.com/hookinbox/hookinbox/internal/verify"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults of the handler's options.
const (
	defaultMaxBody = 1 << 20
	defaultDedupe  = 72 * time.Hour
	// retryAfter is what a sender is told to wait when the event could not
	// be stored; senders retry on 503 on their own schedule anyway.
	retryAfter = "5"
	// logEvery spaces out the log lines of a store that keeps failing.
	logEvery = 10 * time.Second
)

// defaultRetry is the wait after each failed attempt: six attempts in all,
// over about two days, like the senders' own schedules.
var defaultRetry = []time.Duration{30 * time.Second, time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour}

// Handler receives the webhooks of one inbox: it checks the sender, stores
// the request durably and answers at once; the app gets it from the
// delivery workers, with retries.
type Handler struct {
	// Inbox names the queue the events go to. Events stay attached to it
	// across reloads and restarts, so renaming an inbox leaves its stored
	// events behind. Required.
	Inbox string `json:"inbox"`

	// Verify lists the ways a sender can prove itself; a request passes if
	// any one passes. Each is a module of the namespace
	// http.handlers.hookinbox.verify named by its "scheme" (hotmart,
	// stripe, hmac, …). With none, every request is accepted and a warning
	// is logged at start.
	VerifyRaw []json.RawMessage `json:"verify,omitempty" caddy:"namespace=http.handlers.hookinbox.verify inline_key=scheme"`

	// Forward is the URL events are delivered to. The original query string
	// is appended. Required.
	Forward string `json:"forward"`

	// ForwardMethod is the HTTP method of deliveries. Default: POST.
	ForwardMethod string `json:"forward_method,omitempty"`

	// Timeout bounds one delivery attempt. Default: 30s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// Retry lists the waits after each failed attempt; after the last one
	// the event is dead. Default: 30s 1h 6h 12h 24h (six attempts in all).
	Retry []caddy.Duration `json:"retry,omitempty"`

	// Success lists the app's status codes that mean delivered. Default:
	// any 2xx. A redirect is never followed and never a success unless
	// listed here.
	Success []int `json:"success,omitempty"`

	// Concurrency is how many deliveries of this inbox may be in flight at
	// once. Default: 4.
	Concurrency int `json:"concurrency,omitempty"`

	// Ordered delivers one event at a time, in arrival order: a failing
	// event holds back the ones behind it until it is delivered or dead.
	Ordered bool `json:"ordered,omitempty"`

	// MaxBody is the largest accepted body in bytes; a larger one gets 413.
	// Default: 1 MiB.
	MaxBody int64 `json:"max_body,omitempty"`

	// Methods lists the accepted request methods; others get 405.
	// Default: POST.
	Methods []string `json:"methods,omitempty"`

	// Respond replaces the answer to an accepted request. Default: status
	// 200 with the body {"id":"<event id>"}.
	Respond *Respond `json:"respond,omitempty"`

	// Dedupe is how long a sender's event id is remembered: a second
	// request with the same id within it is answered like the first and
	// not stored again. Default: 72h.
	Dedupe caddy.Duration `json:"dedupe,omitempty"`

	// DisableDedupe stores every request, even repeated ones.
	DisableDedupe bool `json:"disable_dedupe,omitempty"`

	// DedupeKey says where the sender's event id is, for schemes that have
	// no default (token, hmac) or to override the scheme's.
	DedupeKey *DedupeKey `json:"dedupe_key,omitempty"`

	// MaxPending caps the events waiting for delivery in this inbox; beyond
	// it new requests get 503 with Retry-After. Default: no cap.
	MaxPending int `json:"max_pending,omitempty"`

	app         *App
	verifiers   []Verifier
	storeErrors *throttle.Every // spaces out the log lines of a failing store
	schemes     []string
	retry       []time.Duration
	logger      *zap.Logger
	// This inbox's counters, looked up once: a label lookup per request
	// hashes the inbox name and takes the vector's lock.
	received, accepted, duplicates prometheus.Counter
}

// Respond is the answer to an accepted request.
type Respond struct {
	// Status code. Default: 200.
	Status int `json:"status,omitempty"`
	// Body, with placeholders such as {http.hookinbox.event_id}.
	// Default: {"id":"<event id>"}.
	Body string `json:"body,omitempty"`
}

// DedupeKey locates the sender's own event id in a request.
type DedupeKey struct {
	// Header names the request header that holds the id.
	Header string `json:"header,omitempty"`
	// JSON is the field of a JSON body that holds the id; dots reach into
	// nested objects (data.id).
	JSON string `json:"json,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.hookinbox",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision applies the defaults, builds the verifiers and registers the
// inbox with the hookinbox app.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger().With(zap.String("inbox", h.Inbox))
	h.storeErrors = throttle.New(logEvery)
	if h.Inbox == "" {
		return errors.New("an inbox name is required")
	}
	if h.Forward == "" {
		return fmt.Errorf("inbox %s: forward is required", h.Inbox)
	}
	if u, err := url.Parse(h.Forward); err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("inbox %s: forward must be an absolute http(s) URL", h.Inbox)
	}
	if h.ForwardMethod == "" {
		h.ForwardMethod = deliver.DefaultMethod
	}
	if h.Timeout <= 0 {
		h.Timeout = caddy.Duration(deliver.DefaultTimeout)
	}
	h.retry = defaultRetry
	if len(h.Retry) > 0 {
		h.retry = make([]time.Duration, len(h.Retry))
		for i, d := range h.Retry {
			if d < 0 {
				return fmt.Errorf("inbox %s: retry waits cannot be negative", h.Inbox)
			}
			h.retry[i] = time.Duration(d)
		}
	}
	if h.Concurrency <= 0 {
		h.Concurrency = deliver.DefaultConcurrency
	}
	if h.MaxBody <= 0 {
		h.MaxBody = defaultMaxBody
	}
	if len(h.Methods) == 0 {
		h.Methods = []string{http.MethodPost}
	}
	for i, m := range h.Methods {
		h.Methods[i] = strings.ToUpper(m)
	}
	if h.Dedupe <= 0 {
		h.Dedupe = caddy.Duration(defaultDedupe)
	}

	var secrets []string
	if h.VerifyRaw != nil {
		mods, err := ctx.LoadModule(h, "VerifyRaw")
		if err != nil {
			return fmt.Errorf("inbox %s: verify: %v", h.Inbox, err)
		}
		for i, mod := range mods.([]any) {
			v, ok := mod.(Verifier)
			name := caddy.GetModuleName(mod)
			if !ok {
				return fmt.Errorf("inbox %s: verify #%d (%s): module is not a verifier", h.Inbox, i+1, name)
			}
			h.verifiers = append(h.verifiers, v)
			h.schemes = append(h.schemes, name)
			if k, ok := mod.(SecretKeeper); ok {
				secrets = append(secrets, k.SecretValues()...)
			}
		}
	}
	if len(h.verifiers) == 0 {
		h.logger.Warn("inbox accepts every request: no verify is configured")
	}

	appIface, err := ctx.App("hookinbox")
	if err != nil {
		return fmt.Errorf("getting hookinbox app: %v", err)
	}
	h.app = appIface.(*App)
	h.countInto(h.app.metrics)
	h.app.noteSecrets(secrets)
	return h.app.register(deliver.Inbox{
		Name:        h.Inbox,
		Forward:     h.Forward,
		Method:      h.ForwardMethod,
		Timeout:     time.Duration(h.Timeout),
		Retry:       h.retry,
		Success:     h.Success,
		Concurrency: h.Concurrency,
		Ordered:     h.Ordered,
	})
}

// countInto looks up this inbox's request counters in m.
func (h *Handler) countInto(m *metrics) {
	h.received = m.received.WithLabelValues(h.Inbox)
	h.accepted = m.accepted.WithLabelValues(h.Inbox)
	h.duplicates = m.duplicates.WithLabelValues(h.Inbox)
}

// ServeHTTP checks, stores and answers. It never waits on the app.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("http.hookinbox.inbox", h.Inbox)
	h.received.Inc()

	if !slices.Contains(h.Methods, r.Method) {
		w.Header().Set("Allow", strings.Join(h.Methods, ", "))
		return h.reject(w, repl, http.StatusMethodNotAllowed, "method_not_allowed")
	}
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer putBodyBuffer(buf)
	body, err := h.readBody(w, r, buf)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return h.reject(w, repl, http.StatusRequestEntityTooLarge, "body_too_large")
		}
		return h.reject(w, repl, http.StatusBadRequest, "body_unreadable")
	}

	result, rejection := h.check(r, body)
	if rejection != nil {
		return h.reject(w, repl, rejection.Status, rejection.Reason)
	}
	repl.Set("http.hookinbox.verified", result.Scheme)
	if hs := result.Handshake; hs != nil {
		w.Header().Set("Content-Type", hs.ContentType)
		w.WriteHeader(hs.Status)
		_, err := w.Write(hs.Body)
		return err
	}

	db := h.app.engine.storeWhenOpen(r.Context())
	if db == nil {
		return h.unavailable(w, repl, "store_unavailable", errors.New("store is not open"))
	}
	// Enqueue encodes the event before it returns and keeps none of it,
	// so the request's own header map and the pooled body can be handed
	// over without a copy.
	event := &store.Event{
		Inbox:     h.Inbox,
		Method:    r.Method,
		Path:      r.URL.Path,
		RawQuery:  r.URL.RawQuery,
		Header:    r.Header,
		Body:      body,
		Verified:  result.Scheme,
		DedupeKey: h.dedupeKey(r, body, result),
	}
	limits := store.Limits{Dedupe: time.Duration(h.Dedupe), MaxPending: h.MaxPending}
	if h.DisableDedupe {
		limits.Dedupe = 0
	}
	id, duplicate, err := db.Enqueue(r.Context(), event, limits)
	if errors.Is(err, store.ErrInboxFull) {
		return h.unavailable(w, repl, "inbox_full", nil)
	}
	if errors.Is(err, store.ErrNoSpace) {
		return h.unavailable(w, repl, "storage_full", err)
	}
	if err != nil {
		return h.unavailable(w, repl, "store_failed", err)
	}
	repl.Set("http.hookinbox.event_id", id)
	if duplicate {
		h.duplicates.Inc()
	} else {
		h.accepted.Inc()
		throughput.received(time.Now())
	}
	return h.accept(w, repl, id)
}

// bodyBuffers holds the buffers request bodies are read into: nothing
// holds a body once ServeHTTP returns, and the body is the largest
// allocation of ingest that is the handler's own. A buffer grown past
// maxPooledBody is left to the garbage collector, so that a few large
// bodies do not stay pinned.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledBody = 64 << 10

func putBodyBuffer(buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledBody {
		buf.Reset()
		bodyBuffers.Put(buf)
	}
}

// readBody reads the whole body, up to MaxBody, into buf, growing it at
// most once when the sender gave its length.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer) ([]byte, error) {
	if r.ContentLength > h.MaxBody {
		return nil, &http.MaxBytesError{Limit: h.MaxBody}
	}
	if r.ContentLength > 0 {
		// bytes.Buffer wants MinRead spare bytes to see EOF without growing.
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, h.MaxBody))
	return buf.Bytes(), err
}

// check runs the verifiers; the first that passes wins. When all fail, the
// first one's reason is reported: it is the scheme the user listed first.
func (h *Handler) check(r *http.Request, body []byte) (verify.Result, *verify.Rejection) {
	if len(h.verifiers) == 0 {
		return verify.Result{Scheme: "none"}, nil
	}
	req := &VerifyRequest{
		Method: r.Method,
		URL:    requestURL(r),
		Header: r.Header,
		Body:   body,
		Now:    time.Now(),
	}
	var first *verify.Rejection
	for i, v := range h.verifiers {
		result, err := v.Verify(req)
		if err == nil {
			if result.Scheme == "" {
				result.Scheme = h.schemes[i]
			}
			return result, nil
		}
		var rej *verify.Rejection
		if !errors.As(err, &rej) {
			rej = &verify.Rejection{Reason: "verification_error", Status: http.StatusUnauthorized}
		}
		if first == nil {
			first = rej
		}
	}
	return verify.Result{}, first
}

// requestURL is the URL as the sender called it, for the schemes that sign it.
func requestURL(r *http.Request) *url.URL {
	u := *r.URL
	u.Host = r.Host
	u.Scheme = "http"
	if r.TLS != nil {
		u.Scheme = "https"
	}
	return &u
}

// dedupeKey is the sender's own event id: where the user said it is, or
// the scheme's default.
func (h *Handler) dedupeKey(r *http.Request, body []byte, result verify.Result) string {
	if h.DisableDedupe {
		return ""
	}
	if k := h.DedupeKey; k != nil {
		if k.Header != "" {
			return verify.KeyFromHeader(r.Header, k.Header)
		}
		return verify.KeyFromJSON(body, k.JSON)
	}
	return result.EventID
}

func (h *Handler) accept(w http.ResponseWriter, repl *caddy.Replacer, id string) error {
	status, body := http.StatusOK, ""
	if h.Respond != nil {
		if h.Respond.Status != 0 {
			status = h.Respond.Status
		}
		body = repl.ReplaceKnown(h.Respond.Body, "")
	}
	if h.Respond == nil || h.Respond.Body == "" {
		w.Header().Set("Content-Type", "application/json")
		body = `{"id":"` + id + `"}`
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, err := io.WriteString(w, body)
	return err
}

// reject answers a request that is not accepted, with a reason code that
// names what failed and never the expected value.
func (h *Handler) reject(w http.ResponseWriter, repl *caddy.Replacer, status int, reason string) error {
	repl.Set("http.hookinbox.reject_reason", reason)
	h.app.metrics.rejected.WithLabelValues(h.Inbox, reason).Inc()
	h.logger.Debug("request rejected", zap.String("reason", reason), zap.Int("status", status))
	return writeJSONError(w, status, reason)
}

// unavailable answers 503: the event could not be stored, so the sender
// must send it again. While the store fails, every request would log the
// same error: it is logged once every logEvery.
func (h *Handler) unavailable(w http.ResponseWriter, repl *caddy.Replacer, reason string, err error) error {
	if err != nil && !errors.Is(err, context.Canceled) {
		if ok, held := h.storeErrors.Allow(time.Now()); ok {
			h.logger.Error("events not stored; senders get 503 and send again",
				zap.String("reason", reason), zap.Error(err), zap.Int64("failures_not_logged", held))
		}
	}
	w.Header().Set("Retry-After", retryAfter)
	return h.reject(w, repl, http.StatusServiceUnavailable, reason)
}

func writeJSONError(w http.ResponseWriter, status int, reason string) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(map[string]string{"error": reason})
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
