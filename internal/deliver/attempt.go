package deliver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/hookinbox/hookinbox/internal/store"
)

// Limits of what is read of a response.
const (
	// responseKeep is how much of the body is kept in the attempt's record.
	responseKeep = 1 << 10
	// responseDrain is how much more is read and thrown away so that the
	// connection can be reused; a longer body costs a new connection instead.
	responseDrain = 64 << 10
)

// resendMax is how many times one attempt is sent again at once, for the
// one failure that is no fault of the application: a keep-alive connection
// it had already closed when the request went out on it.
const resendMax = 1

// Headers added toward the application.
const (
	headerID         = "Hookinbox-Id"
	headerAttempt    = "Hookinbox-Attempt"
	headerReceivedAt = "Hookinbox-Received-At"
	headerVerified   = "Hookinbox-Verified"
)

var errNotAbsolute = errors.New("forward must be an absolute http or https URL")

// newTransport returns the transport shared by every inbox. Deliveries go to
// a few hosts, usually one, at the inboxes' concurrency: the idle pool per
// host is sized for that so that connections are reused, not churned.
func newTransport() *http.Transport {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// newClient returns the client of every attempt. Status codes are never
// retried here: the schedule of retries is the store's, and survives
// restarts. Redirects are not followed: a 3xx is a failure of its own.
func newClient(t *http.Transport) *retryablehttp.Client {
	return &retryablehttp.Client{
		HTTPClient: &http.Client{
			Transport: pooled{t},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		Logger:       nil, // its default writes to stderr
		RetryMax:     resendMax,
		CheckRetry:   resendPolicy,
		Backoff:      func(time.Duration, time.Duration, int, *http.Response) time.Duration { return 0 },
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
		RequestLogHook: func(_ retryablehttp.Logger, r *http.Request, _ int) {
			// Each send of the request traces its own connection.
			if cs, ok := r.Context().Value(connKey{}).(*connState); ok {
				cs.got.Store(false)
				cs.reused.Store(false)
			}
		},
	}
}

// pooled hides the transport's CloseIdleConnections from http.Client:
// retryablehttp closes the idle connections after every failed request,
// which on a transport shared by every inbox would drop the warm
// connections of the healthy ones because of a broken one.
type pooled struct{ rt http.RoundTripper }

func (p pooled) RoundTrip(r *http.Request) (*http.Response, error) { return p.rt.RoundTrip(r) }

// resendPolicy is the client's CheckRetry: send again only a request whose
// reused connection was closed under it before any answer came.
func resendPolicy(ctx context.Context, _ *http.Response, err error) (bool, error) {
	if err == nil || ctx.Err() != nil {
		return false, nil
	}
	cs, ok := ctx.Value(connKey{}).(*connState)
	return ok && cs.reused.Load() && isReset(err), nil
}

// connKey keys an attempt's *connState in its context.
type connKey struct{}

// connState is what an attempt learnt of its connection: whether it got one
// at all (or failed before: a connect failure) and whether it was reused.
type connState struct {
	got, reused atomic.Bool
}

func (cs *connState) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			cs.got.Store(true)
			cs.reused.Store(info.Reused)
		},
	}
}

// result is one attempt as made, before it is scheduled.
type result struct {
	attempt store.Attempt
	// retryAfter is the application's Retry-After on a 429 or 503.
	retryAfter time.Duration
	// cancelled: Stop cancelled it. It is no attempt and is not recorded.
	cancelled bool
}

// attempt sends e to the application once and classifies what happened.
func (s *Service) attempt(parent context.Context, set *settings, e *store.Event) result {
	res := result{attempt: store.Attempt{N: e.Attempts + 1, At: time.Now()}}
	a := &res.attempt

	ctx, cancel := context.WithTimeout(parent, set.Timeout)
	defer cancel()
	cs := new(connState)
	ctx = httptrace.WithClientTrace(context.WithValue(ctx, connKey{}, cs), cs.trace())

	req, err := newRequest(ctx, set, e, a.N)
	if err != nil {
		// Only a method the glue let through can fail here; nothing was
		// sent, and the application cannot be blamed.
		a.Outcome, a.Error = store.OutcomeClientError, err.Error()
		return res
	}
	resp, err := s.client.Do(req)
	if err != nil {
		a.Duration = time.Since(a.At)
		if parent.Err() != nil {
			res.cancelled = true
			return res
		}
		a.Outcome = classify(ctx, err, cs)
		a.Error = describe(err, a.Outcome, set)
		return res
	}

	a.Status = resp.StatusCode
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		res.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	var read int64
	a.Response, read, err = readResponse(resp.Body)
	a.Duration = time.Since(a.At)
	switch {
	case err == nil:
		a.Outcome = statusOutcome(set, resp.StatusCode)
	case parent.Err() != nil:
		// Stop cut the answer short, not the application: as when it
		// cancels an attempt before any answer, the event goes again.
		res.cancelled = true
	default:
		a.Outcome, a.Error = incompleteOutcome(ctx, err, read, resp.ContentLength, set)
	}
	return res
}

// newRequest builds the request of attempt n at e: the stored body as is,
// the original query after the forward URL's own, the original headers
// without those meant for one hop only, and hookinbox's own.
func newRequest(ctx context.Context, set *settings, e *store.Event, n int) (*retryablehttp.Request, error) {
	target := set.forwardURL
	if e.RawQuery != "" {
		u := *set.forward
		if u.RawQuery != "" {
			u.RawQuery += "&" + e.RawQuery
		} else {
			u.RawQuery = e.RawQuery
		}
		target = u.String()
	}
	// A *bytes.Reader is sent, and resent, from the stored slice without a
	// copy. An empty body must be nil, or it would go out chunked.
	var body any
	if len(e.Body) > 0 {
		body = bytes.NewReader(e.Body)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, set.Method, target, body)
	if err != nil {
		return nil, err
	}
	verified := e.Verified
	if verified == "" {
		verified = "none"
	}
	// The names are canonical as written, and one array holds the values.
	own := []string{e.ID, strconv.Itoa(n), e.ReceivedAt.UTC().Format(time.RFC3339), verified}
	req.Header = forwardHeader(e.Header, len(own))
	req.Header[headerID] = own[0:1:1]
	req.Header[headerAttempt] = own[1:2:2]
	req.Header[headerReceivedAt] = own[2:3:3]
	req.Header[headerVerified] = own[3:4:4]
	return req, nil
}

// forwardHeader returns the stored headers that go to the application, in
// a header with room for more. Besides the hop-by-hop ones it leaves out:
//   - Host and Content-Length, which the client sets for the new request;
//   - Expect, since the body is sent from memory, not awaited from the sender;
//   - Accept-Encoding, so that the client negotiates the compression it
//     undoes itself and the recorded response is readable;
//   - any Hookinbox-* header, so that the application can trust the ones it
//     sees to be hookinbox's own and not a sender's.
//
// The value slices are shared with the stored event: nothing changes them.
func forwardHeader(stored http.Header, room int) http.Header {
	h := make(http.Header, len(stored)+room)
	var connection []string
	for k, v := range stored {
		// The server keeps names canonical, and then this costs a scan and
		// no copy; a name set otherwise (by a handler before hookinbox's,
		// say) must be made canonical for the checks to see it.
		k = http.CanonicalHeaderKey(k)
		if k == "Connection" {
			connection = v
		}
		if !leftOut(k) {
			h[k] = v
		}
	}
	for _, v := range connection {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	return h
}

// leftOut tells whether forwardHeader leaves out the header of canonical
// name k, whatever the Connection header lists.
func leftOut(k string) bool {
	switch k {
	// Meant for one connection only (RFC 9110 7.6.1), as Caddy's reverse
	// proxy and net/http/httputil drop them.
	case "Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	case "Host", "Content-Length", "Expect", "Accept-Encoding":
		return true
	}
	return strings.HasPrefix(k, "Proxy-") || strings.HasPrefix(k, "Hookinbox-")
}

// readResponse keeps the first responseKeep bytes of body, drains a bounded
// amount more so the connection can be reused, and closes it. It returns
// how many bytes of the body it read and the body's own error, nil once it
// has read to the end or to its limits: a body cut off before the end that
// its length or chunking announced fails with io.ErrUnexpectedEOF.
func readResponse(body io.ReadCloser) (kept []byte, read int64, err error) {
	defer body.Close()
	bp := responseBuffers.Get().(*[responseKeep]byte)
	defer responseBuffers.Put(bp)
	buf := bp[:]
	// Not io.ReadFull: its io.ErrUnexpectedEOF for a body shorter than buf
	// would hide the body's own, for a body shorter than announced.
	n := 0
	for n < len(buf) && err == nil {
		var m int
		m, err = body.Read(buf[n:])
		n += m
	}
	read = int64(n)
	if err == nil {
		var drained int64
		drained, err = io.Copy(io.Discard, io.LimitReader(body, responseDrain))
		read += drained
	}
	if err == io.EOF {
		err = nil
	}
	if n > 0 {
		kept = bytes.Clone(buf[:n])
	}
	return kept, read, err
}

// responseBuffers holds the buffers responses are read into; what is kept
// is copied out, at its own size. Most applications answer a webhook with
// an empty or short body, and a new buffer per attempt was 1 KiB to
// allocate and clear for nothing.
var responseBuffers = sync.Pool{New: func() any { return new([responseKeep]byte) }}

// incompleteOutcome classes an answer whose body failed after read bytes
// (length is the announced length, -1 if unknown), and tells what happened.
//
// Such an answer is incomplete, and a client must record it so (RFC 9112
// section 8), whatever its status: an application cut off mid-answer may
// have failed after its status line, and at least once prefers a duplicate
// to a loss. So the status does not decide the outcome. A body still not
// whole when the attempt's timeout is over is a timeout, as an answer that
// never came: the application is hung or too slow either way, and the user
// looks at the same thing (the app, or the inbox's timeout). Any other end
// is a reset: the connection closed before the whole answer. Both are
// retried on the schedule and count toward the breaker.
func incompleteOutcome(ctx context.Context, err error, read, length int64, set *settings) (outcome, msg string) {
	of := ""
	if length >= 0 {
		of = fmt.Sprintf(" of %d", length)
	}
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded || isTimeout(err) {
		return store.OutcomeTimeout, fmt.Sprintf("no whole answer within %s: %d%s bytes of its body came", set.Timeout, read, of)
	}
	msg = fmt.Sprintf("the answer was cut off after %d%s bytes of its body", read, of)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		msg += ": " + describe(err, "", set)
	}
	return store.OutcomeReset, msg
}

// statusOutcome classes an answer. A status not in Success is a failure
// classed by its code; a 2xx that is not in Success is classed client_error:
// the application refused the event, and it is not down.
func statusOutcome(set *settings, code int) string {
	switch {
	case set.delivered(code):
		return store.OutcomeOK
	case code >= 500 || code < 100:
		return store.OutcomeServerError
	case code >= 400:
		return store.OutcomeClientError
	case code >= 300:
		return store.OutcomeRedirect
	}
	return store.OutcomeClientError
}

// classify classes an attempt that got no answer.
func classify(ctx context.Context, err error, cs *connState) string {
	var op *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded:
		return store.OutcomeTimeout
	case isTLS(err):
		return store.OutcomeTLS
	case isConnect(err) || errors.As(err, &op) && op.Op == "dial":
		// A dial that timed out on the dialer's own limit (not the
		// attempt's) is still a failure to connect.
		return store.OutcomeConnect
	case isTimeout(err):
		return store.OutcomeTimeout
	case !cs.got.Load():
		return store.OutcomeConnect
	}
	// Connected, and the connection ended with no answer.
	return store.OutcomeReset
}

func isTLS(err error) bool {
	var (
		rec   tls.RecordHeaderError
		alert tls.AlertError
		verr  *tls.CertificateVerificationError
		ua    x509.UnknownAuthorityError
		host  x509.HostnameError
		inv   x509.CertificateInvalidError
		op    *net.OpError
	)
	switch {
	case errors.As(err, &rec), errors.As(err, &alert), errors.As(err, &verr),
		errors.As(err, &ua), errors.As(err, &host), errors.As(err, &inv):
		return true
	case errors.As(err, &op) && (op.Op == "remote error" || op.Op == "local error"):
		// TLS alerts travel in unexported types wrapped this way.
		return true
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		// net/http's own words for an https forward to a plain HTTP port.
		return true
	}
	return false
}

func isConnect(err error) bool {
	var dns *net.DNSError
	return errors.As(err, &dns) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) ||
		errors.Is(err, syscall.EADDRNOTAVAIL)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isReset(err error) bool {
	return errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE)
}

// describe tells what went wrong for the attempt's record and the logs. The
// forward URL may hold credentials (userinfo, a token in its query): the
// url.Error that names it is dropped, and what is left is scrubbed of the
// userinfo in case an inner error quotes it.
func describe(err error, outcome string, set *settings) string {
	if outcome == store.OutcomeTimeout && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("no response within %s", set.Timeout)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	msg := err.Error()
	if u := set.forward; u != nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
		if name := u.User.Username(); len(name) > 2 {
			msg = strings.ReplaceAll(msg, name, "xxxxx")
		}
	}
	return msg
}

// redact returns u without credentials, for messages about the settings.
func redact(u *url.URL) string {
	r := *u
	r.User = nil
	r.RawQuery = ""
	return r.String()
}
