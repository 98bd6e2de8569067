package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/hookinbox/hookinbox/internal/store"
)

// The dashboard in a real browser: headless Chromium (Debian's chromium
// package), driven by chromedp, against a real Caddy in-process. Without
// a browser the test skips, except in CI (CI=true), where it fails.
//
// HOOKINBOX_SCREENSHOTS=<dir> saves the screenshots of the three pages
// there (docs/ holds the README's).

// browserPath finds Chromium, or skips (fails in CI).
func browserPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium found: CI must run the browser tests (apt-get install -y chromium)")
	}
	t.Skip("no Chromium found: install Debian's chromium to run the browser tests")
	return ""
}

// newBrowser starts a headless Chromium with no network of its own (no
// updates, no sync, no background requests) and opens a tab.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browserPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	tab, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(cancelTab)
	if err := chromedp.Do(tab, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return tab
}

// browsing records what the tab loads and whether a dialog opened.
type browsing struct {
	mu        sync.Mutex
	responses []*network.Response
	failures  []string
	dialogs   []string
}

func watch(t *testing.T, tab context.Context) *browsing {
	t.Helper()
	b := &browsing{}
	err := chromedp.Listen(tab, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventResponseReceived:
			b.responses = append(b.responses, ev.Response)
		case *network.EventLoadingFailed:
			b.failures = append(b.failures, ev.ErrorText+" "+string(ev.BlockedReason))
		case *cdppage.EventJavascriptDialogOpening:
			b.dialogs = append(b.dialogs, ev.Message)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// since returns the responses from the n-th on.
func (b *browsing) since(n int) []*network.Response {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*network.Response(nil), b.responses[min(n, len(b.responses)):]...)
}

func (b *browsing) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.responses)
}

// open navigates to url as a person following a link from referrer does.
// Caddy's admin endpoint refuses a browser's request that has neither
// Origin nor Referer (its cross-site check, admin.go), which is what a
// URL typed into the address bar sends.
func open(t *testing.T, tab context.Context, url, referrer string) {
	t.Helper()
	nav := chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
		res, err := cdp.Call(ctx, target, cdppage.Navigate, cdppage.NavigateParams{URL: url, Referrer: referrer})
		if err == nil && res.ErrorText != "" {
			err = fmt.Errorf("%s", res.ErrorText)
		}
		return err
	})
	if _, err := chromedp.Run(tab, chromedp.WaitEvent(cdppage.LoadEventFired, nil, nav)); err != nil {
		t.Fatalf("opening %s: %v", url, err)
	}
}

// click clicks the first element sel selects and waits for the page it
// loads.
func click(t *testing.T, tab context.Context, sel string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 15*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(cdppage.LoadEventFired, nil,
		chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))); err != nil {
		t.Fatalf("clicking %s: %v", sel, err)
	}
}

func text(t *testing.T, tab context.Context, sel string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 15*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		t.Fatalf("reading %s: %v", sel, err)
	}
	return s
}

func screenshot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	dir := os.Getenv("HOOKINBOX_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// uiConfig is inboxConfig with the dashboard also in the site, under /ops/.
func uiConfig(storage, backend string) string {
	return strings.Replace(inboxConfig(storage, backend, "retry 20ms"), "http://localhost:9080 {", `http://localhost:9080 {
	handle_path /ops/* {
		hookinbox_ui
	}`, 1)
}

const (
	adminOrigin = "http://localhost:2999"
	adminUI     = adminOrigin + "/hookinbox/ui/"
	siteUI      = "http://localhost:9080/ops/"
)

func TestUIInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser and a Caddy")
	}
	tab := newBrowser(t)
	app := newSwitchable(t, http.StatusUnprocessableEntity)
	startCaddy(t, uiConfig(t.TempDir(), app.srv.URL))
	dead := sendDead(t, 1)[0]
	db := activeStore(t)

	// A payload written by a stranger: markup in the body, a header and
	// the sender's event id.
	markup := `<script>window.pwned=1;alert(1)</script><img src=x onerror="window.pwned=2;alert(2)">`
	status, answer := send(t, `{"id":"`+strings.ReplaceAll(markup, `"`, `\"`)+`"}`, "X-Evil", markup)
	if status != http.StatusOK {
		t.Fatalf("sending the payload: %d %s", status, answer)
	}
	evil := eventID(t, answer)
	waitFor(t, "the payload's event dead", 10*time.Second, func() bool {
		e, _, err := db.Get(evil)
		return err == nil && e.State == store.Dead
	})
	seen := watch(t, tab)

	t.Run("from the overview to a dead event, its answer and hint, then replay", func(t *testing.T) {
		from := seen.count()
		open(t, tab, adminUI, adminOrigin+"/")
		// The admin endpoint refuses no-cors requests: the page asks for
		// its assets in cors mode (crossorigin), and they load.
		for _, r := range seen.since(from) {
			if r.Status != http.StatusOK {
				t.Errorf("%s = %d", r.URL, r.Status)
			}
		}
		if got := text(t, tab, "table.inboxes"); !strings.Contains(got, "test") {
			t.Fatalf("overview shows %q, want the inbox test", got)
		}
		click(t, tab, `a.state-dead`)
		click(t, tab, `a[href$="events/`+dead+`"]`)
		attempts := text(t, tab, "section.attempt")
		for _, want := range []string{"answer of the app", hintFor(store.OutcomeClientError), "HTTP 422", "client_error"} {
			if !strings.Contains(attempts, want) {
				t.Errorf("event page's attempt lacks %q:\n%s", want, attempts)
			}
		}
		if next := text(t, tab, "dd.next"); !strings.Contains(next, "Dead since") {
			t.Errorf("what happens next = %q", next)
		}
		screenshot(t, tab, "dashboard-event.png")

		app.status.Store(http.StatusOK)
		calls := app.calls.Load()
		click(t, tab, "#replay")
		waitFor(t, "the app to receive the replayed event", 10*time.Second, func() bool { return app.calls.Load() > calls })
		// The page refreshes itself: it comes to show the delivery.
		waitFor(t, "the page to show the delivery", 15*time.Second, func() bool {
			s, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS("dl.summary")))
			return err == nil && strings.Contains(s, "delivered")
		})
	})

	t.Run("a stranger's markup is shown as text and runs nothing", func(t *testing.T) {
		for _, url := range []string{siteUI + "events/" + evil, siteUI + "events?state=dead", adminUI + "events/" + evil} {
			open(t, tab, url, adminOrigin+"/")
			if body := text(t, tab, "main"); !strings.Contains(body, "<script>window.pwned=1") {
				t.Errorf("%s does not show the markup as text", url)
			}
			pwned, err := chromedp.Run(tab, chromedp.Evaluate[bool](`typeof window.pwned !== "undefined"`))
			if err != nil || pwned {
				t.Errorf("%s: the payload's script ran (pwned=%v, %v)", url, pwned, err)
			}
			n, err := chromedp.Run(tab, chromedp.Evaluate[int](`document.querySelectorAll("main script, main img").length`))
			if err != nil || n != 0 {
				t.Errorf("%s: %d script or img elements from the payload (%v)", url, n, err)
			}
		}
		seen.mu.Lock()
		dialogs := seen.dialogs
		seen.mu.Unlock()
		if len(dialogs) > 0 {
			t.Errorf("dialogs opened: %v", dialogs)
		}
	})

	t.Run("a cross-origin POST is refused", func(t *testing.T) {
		// A page of another origin that submits a form to the dashboard.
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `<!doctype html><form id="f" method="post" action="%s"></form><script>document.getElementById("f").submit()</script>`,
				r.URL.Query().Get("to"))
		}))
		defer other.Close()
		for _, target := range []string{siteUI + "events/" + evil + "/replay", adminUI + "events/" + evil + "/delete"} {
			from := seen.count()
			done := make(chan *network.Response, 1)
			go func() {
				for range 200 {
					for _, r := range seen.since(from) {
						if r.URL == target {
							done <- r
							return
						}
					}
					time.Sleep(25 * time.Millisecond)
				}
				done <- nil
			}()
			open(t, tab, other.URL+"/?to="+target, "")
			r := <-done
			if r == nil {
				t.Fatalf("the form's POST to %s was never answered", target)
			}
			if r.Status != http.StatusForbidden {
				t.Errorf("cross-origin POST %s = %d, want 403", target, r.Status)
			}
		}
		if e, _, err := db.Get(evil); err != nil || e.State != store.Dead {
			t.Errorf("after the refused POSTs the event is %v (%v), want dead and present", e, err)
		}
	})

	t.Run("under a prefix every asset loads", func(t *testing.T) {
		from := seen.count()
		open(t, tab, siteUI, "")
		text(t, tab, "figure")
		screenshot(t, tab, "dashboard-inboxes.png")
		click(t, tab, `nav a[href$="events"]`)
		text(t, tab, "table.events")
		screenshot(t, tab, "dashboard-events.png")
		click(t, tab, `a[href$="events/`+evil+`"]`)
		text(t, tab, "section.attempt")
		var assets []string
		for _, r := range seen.since(from) {
			// The browser may still fetch the admin endpoint's favicon,
			// from the pages before: only the site's requests count.
			if !strings.HasPrefix(r.URL, "http://localhost:9080/") {
				continue
			}
			if r.Status >= 400 {
				t.Errorf("%s = %d", r.URL, r.Status)
			}
			if strings.Contains(r.URL, "/assets/") {
				if !strings.HasPrefix(r.URL, siteUI+"assets/") {
					t.Errorf("asset %s loaded from outside the prefix", r.URL)
				}
				assets = append(assets, r.URL)
			}
		}
		for _, want := range []string{"style.css", "ui.js"} {
			if !slicesContainsSuffix(assets, want) {
				t.Errorf("asset %s never loaded; loaded: %v", want, assets)
			}
		}
		styled, err := chromedp.Run(tab, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("header")).backgroundColor`))
		if err != nil || styled == "rgba(0, 0, 0, 0)" {
			t.Errorf("the stylesheet is not applied (header background %q, %v)", styled, err)
		}
		seen.mu.Lock()
		failures := seen.failures
		seen.mu.Unlock()
		for _, f := range failures {
			if !strings.Contains(f, "ERR_ABORTED") {
				t.Errorf("a request failed: %s", f)
			}
		}
	})
}

func slicesContainsSuffix(list []string, suffix string) bool {
	for _, s := range list {
		if strings.HasSuffix(s, suffix) {
			return true
		}
	}
	return false
}
