package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/hookinbox/hookinbox/internal/verify"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "hookinbox",
		Usage: "inboxes | list | show <id> | replay <id> | delete <id> | send-test <url>",
		Short: "Inspects, replays and tests the webhook inboxes of a running Caddy",
		Long: `
Talks to the running Caddy through its admin API (the /hookinbox/ routes) to
show the inboxes and their events, replay events and delete them. Tables are
printed for people; --json prints the admin API's answer for scripts.

The admin address is taken from --address, else from the admin option of the
config given with --config (and --adapter), else the default localhost:2019,
as for 'caddy stop' and 'caddy reload'.

send-test does not use the admin API: it sends a sample event, signed the way
the sender would sign it, to a URL, so you can test an endpoint end to end.
`,
		CobraFunc: setUpCommand,
	})
}

// setUpCommand adds the subcommands and the flags they share.
func setUpCommand(cmd *cobra.Command) {
	flags := cmd.PersistentFlags()
	flags.StringP("config", "c", "", "Configuration file to read the admin address from, if --address is not used")
	flags.StringP("adapter", "a", "", "Name of the config adapter to apply (when --config is used)")
	flags.String("address", "", "The address of the admin API endpoint, if not the default")
	flags.Bool("json", false, "Print JSON instead of a table")
	cmd.SilenceUsage = true
	cmd.AddCommand(
		inboxesCommand(),
		listCommand(),
		showCommand(),
		replayCommand(),
		deleteCommand(),
		sendTestCommand(),
	)
}

func inboxesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "inboxes",
		Short: "Shows each inbox: events by state, the oldest pending event, the circuit breaker",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var answer struct {
				Inboxes []inboxView `json:"inboxes"`
			}
			raw, err := adminGet(cmd, "/hookinbox/inboxes", &answer)
			if err != nil || jsonWanted(cmd) {
				return printJSON(cmd, raw, err)
			}
			return printInboxes(cmd.OutOrStdout(), answer.Inboxes, time.Now())
		},
	}
}

func printInboxes(w io.Writer, inboxes []inboxView, now time.Time) error {
	if len(inboxes) == 0 {
		_, err := fmt.Fprintln(w, "No inboxes.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INBOX\tPENDING\tDELIVERING\tDELIVERED\tDEAD\tOLDEST PENDING\tBREAKER\tFORWARD")
	for _, in := range inboxes {
		oldest := "-"
		if in.OldestPending != nil {
			oldest = age(now.Sub(*in.OldestPending))
		}
		breaker := "-"
		if in.Breaker != nil {
			breaker = in.Breaker.State
		}
		forward := in.Forward
		if !in.Configured {
			forward = "(not configured)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", in.Inbox,
			in.Counts["pending"], in.Counts["delivering"], in.Counts["delivered"], in.Counts["dead"],
			oldest, breaker, forward)
	}
	return tw.Flush()
}

func listCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list [--inbox <name>] [--state <state>] [--since <time|duration>] [--limit <n>] [--cursor <c>]",
		Short: "Lists events, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for _, name := range []string{"inbox", "state", "since", "until", "cursor"} {
				if v, _ := cmd.Flags().GetString(name); v != "" {
					q.Set(name, v)
				}
			}
			// A limit out of bounds goes to the admin API, whose 400 says
			// what is allowed, rather than being dropped here.
			if cmd.Flags().Changed("limit") {
				n, _ := cmd.Flags().GetInt("limit")
				q.Set("limit", strconv.Itoa(n))
			}
			uri := "/hookinbox/events"
			if len(q) > 0 {
				uri += "?" + q.Encode()
			}
			var answer struct {
				Events     []eventView `json:"events"`
				NextCursor string      `json:"next_cursor"`
			}
			raw, err := adminGet(cmd, uri, &answer)
			if err != nil || jsonWanted(cmd) {
				return printJSON(cmd, raw, err)
			}
			return printEvents(cmd.OutOrStdout(), answer.Events, answer.NextCursor, time.Now())
		},
	}
	cmd.Flags().String("inbox", "", "Only the events of this inbox")
	cmd.Flags().String("state", "", "Only the events in this state: pending, delivering, delivered or dead")
	cmd.Flags().String("since", "", "Only the events received since this RFC 3339 time, or this long ago (1h)")
	cmd.Flags().String("until", "", "Only the events received before this RFC 3339 time, or this long ago")
	cmd.Flags().Int("limit", 0, "Events per page (default 50, at most 1000)")
	cmd.Flags().String("cursor", "", "Where the page starts: the cursor printed under the previous page")
	return cmd
}

func printEvents(w io.Writer, events []eventView, next string, now time.Time) error {
	if len(events) == 0 {
		_, err := fmt.Fprintln(w, "No events.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tINBOX\tSTATE\tATTEMPTS\tRECEIVED\tVERIFIED")
	for _, e := range events {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", e.ID, e.Inbox, e.State, e.Attempts,
			e.ReceivedAt.Local().Format(time.DateTime)+" ("+age(now.Sub(e.ReceivedAt))+" ago)", e.Verified)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if next != "" {
		_, err := fmt.Fprintf(w, "\nMore events: add --cursor %s\n", next)
		return err
	}
	return nil
}

func showCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show <id>",
		Short: "Shows one event: its request, with secrets redacted, and every delivery attempt",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var e eventDetail
			raw, err := adminGet(cmd, "/hookinbox/events/"+url.PathEscape(args[0]), &e)
			if err != nil || jsonWanted(cmd) {
				return printJSON(cmd, raw, err)
			}
			return printEvent(cmd.OutOrStdout(), &e)
		},
	}
}

func printEvent(w io.Writer, e *eventDetail) error {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Event\t%s\n", e.ID)
	fmt.Fprintf(tw, "Inbox\t%s\n", e.Inbox)
	fmt.Fprintf(tw, "State\t%s after %d attempt(s)\n", e.State, e.Attempts)
	fmt.Fprintf(tw, "Received\t%s\n", e.ReceivedAt.Format(time.RFC3339Nano))
	if e.NextAttemptAt != nil {
		fmt.Fprintf(tw, "Next attempt\t%s\n", e.NextAttemptAt.Format(time.RFC3339Nano))
	}
	if e.FinishedAt != nil {
		fmt.Fprintf(tw, "Finished\t%s\n", e.FinishedAt.Format(time.RFC3339Nano))
	}
	request := e.Method + " " + e.Path
	if e.RawQuery != "" {
		request += "?" + e.RawQuery
	}
	fmt.Fprintf(tw, "Request\t%s\n", request)
	fmt.Fprintf(tw, "Verified\t%s\n", e.Verified)
	if e.DedupeKey != "" {
		fmt.Fprintf(tw, "Sender's id\t%s\n", e.DedupeKey)
	}
	tw.Flush()

	fmt.Fprintln(&b, "\nHeaders")
	for _, name := range sortedKeys(e.Header) {
		for _, v := range e.Header[name] {
			fmt.Fprintf(&b, "  %s: %s\n", name, v)
		}
	}
	note := ""
	if e.BodyRedacted {
		note = ", secrets redacted"
	}
	fmt.Fprintf(&b, "\nBody (%s%s)\n", e.BodyEncoding, note)
	fmt.Fprintln(&b, indent(e.Body, "  "))

	if len(e.History) == 0 {
		fmt.Fprintln(&b, "\nNo delivery attempt yet.")
	} else {
		fmt.Fprintln(&b, "\nAttempts")
	}
	for _, a := range e.History {
		status := ""
		if a.Status != 0 {
			status = fmt.Sprintf("  HTTP %d", a.Status)
		}
		fmt.Fprintf(&b, "  #%d  %s  %s  %s%s\n", a.N, a.At.Format(time.RFC3339Nano), a.Duration, a.Outcome, status)
		if a.Error != "" {
			fmt.Fprintf(&b, "      error:    %s\n", a.Error)
		}
		if a.Response != "" {
			fmt.Fprintf(&b, "      response: %s\n", oneLine(a.Response, 200))
		}
		if a.Hint != "" {
			fmt.Fprintf(&b, "      check:    %s\n", a.Hint)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

func replayCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replay <id> | --inbox <name> [--state dead]",
		Short: "Delivers an event again now, or every event of an inbox in a state (dead by default)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inbox, _ := cmd.Flags().GetString("inbox")
			state, _ := cmd.Flags().GetString("state")
			switch {
			case len(args) == 1 && (inbox != "" || cmd.Flags().Changed("state")):
				return errors.New("give either an event id or --inbox, not both")
			case len(args) == 1:
				var answer struct{}
				raw, err := adminDo(cmd, http.MethodPost, "/hookinbox/events/"+url.PathEscape(args[0])+"/replay", &answer)
				if err != nil || jsonWanted(cmd) {
					return printJSON(cmd, raw, err)
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "Replayed event %s: it is pending and due now.\n", args[0])
				return err
			case inbox != "":
				var answer struct {
					Replayed int `json:"replayed"`
				}
				uri := "/hookinbox/inboxes/" + url.PathEscape(inbox) + "/replay?state=" + url.QueryEscape(state)
				raw, err := adminDo(cmd, http.MethodPost, uri, &answer)
				if err != nil || jsonWanted(cmd) {
					return printJSON(cmd, raw, err)
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "Replayed %d %s event(s) of inbox %s.\n", answer.Replayed, state, inbox)
				return err
			}
			return errors.New("give an event id, or --inbox (and --state) for a bulk replay")
		},
	}
	cmd.Flags().String("inbox", "", "Replay the events of this inbox")
	cmd.Flags().String("state", "dead", "With --inbox: the state of the events to replay (dead, delivered or pending)")
	return cmd
}

func deleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete <id>",
		Short: "Forgets one event",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var answer struct{}
			raw, err := adminDo(cmd, http.MethodDelete, "/hookinbox/events/"+url.PathEscape(args[0]), &answer)
			if err != nil || jsonWanted(cmd) {
				return printJSON(cmd, raw, err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Deleted event %s.\n", args[0])
			return err
		},
	}
}

// sendTestSecretEnv is read when --secret is not given, so that the secret
// need not appear in the shell's history or the process list.
const sendTestSecretEnv = "HOOKINBOX_SECRET"

func sendTestCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "send-test --scheme <scheme> --secret <secret> [--option <name>=<value>] [--header <name>:<value>] <url>",
		Short: "Sends a sample event to a URL, signed the way its sender signs it",
		Long: `Sends a realistic sample event of the sender's scheme to <url>, with the
headers the sender adds, signed with the secret, and prints the answer. Point
it at your hookinbox endpoint to check it end to end, the way the sender would.

The secret is taken from --secret or, if that is not given, from the
` + sendTestSecretEnv + ` environment variable. It is never printed.

Schemes: ` + strings.Join(verify.Schemes(), ", ") + `. The token and hmac schemes
take the settings of their verify block as --option name=value (` + strings.Join(verify.Options(), ", ") + `).

Monetizze, Perfect Pay, Cakto and Hotmart's v1 postbacks carry the secret in
the body: send-test puts it there. discord, sendgrid and pagarme verify with
the sender's public key, which cannot sign: give the matching private key as
the secret instead (pagarme: an RSA private key in PEM, whose public key is in
the JWKS the inbox's jwks names, with its RFC 7638 thumbprint as kid).`,
		Args: cobra.ExactArgs(1),
		RunE: runSendTest,
	}
	cmd.Flags().String("scheme", "", "The sender's scheme, as written after verify")
	cmd.Flags().String("secret", "", "The secret shared with the sender (default: $"+sendTestSecretEnv+")")
	cmd.Flags().StringArray("option", nil, "A verify setting, name=value (repeatable)")
	cmd.Flags().StringArray("header", nil, "An extra request header, name:value (repeatable)")
	cmd.Flags().String("method", http.MethodPost, "The request method")
	cmd.Flags().Duration("timeout", 10*time.Second, "How long to wait for the answer")
	return cmd
}

// sendTestResult is what send-test prints with --json.
type sendTestResult struct {
	URL     string `json:"url"`
	Scheme  string `json:"scheme"`
	Status  int    `json:"status"`
	Answer  string `json:"answer"`
	EventID string `json:"event_id,omitempty"`
}

func runSendTest(cmd *cobra.Command, args []string) error {
	scheme, _ := cmd.Flags().GetString("scheme")
	secret, _ := cmd.Flags().GetString("secret")
	if secret == "" {
		secret = os.Getenv(sendTestSecretEnv)
	}
	// Whatever is printed, including errors, goes through hide.
	hide := func(s string) string {
		if secret == "" {
			return s
		}
		return strings.ReplaceAll(s, secret, redacted)
	}
	fail := func(err error) error { return errors.New(hide(err.Error())) }

	if scheme == "" {
		return fmt.Errorf("--scheme is required (one of: %s)", strings.Join(verify.Schemes(), ", "))
	}
	if secret == "" {
		return fmt.Errorf("--secret (or $%s) is required", sendTestSecretEnv)
	}
	c := verify.Config{Scheme: scheme, Secrets: []string{secret}}
	options, _ := cmd.Flags().GetStringArray("option")
	for _, o := range options {
		name, value, ok := strings.Cut(o, "=")
		if !ok {
			return fmt.Errorf("--option %q: expected name=value with a name among %s", hide(o), strings.Join(verify.Options(), ", "))
		}
		if err := c.SetOption(name, value); err != nil {
			return fmt.Errorf("--option %q: %v", hide(o), err)
		}
	}
	target, err := url.Parse(args[0])
	if err != nil || target.Host == "" || (target.Scheme != "http" && target.Scheme != "https") {
		return fmt.Errorf("%q is not an http(s) URL", hide(args[0]))
	}
	shown := target.String()

	now := time.Now()
	body, header, err := verify.SignedSample(c, target, now)
	if err != nil {
		return fail(fmt.Errorf("signing the test event: %v", err))
	}
	method, _ := cmd.Flags().GetString("method")
	req, err := http.NewRequestWithContext(cmd.Context(), method, target.String(), bytes.NewReader(body))
	if err != nil {
		return fail(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hookinbox-send-test")
	for name, values := range header {
		req.Header[name] = values
	}
	extra, _ := cmd.Flags().GetStringArray("header")
	for _, h := range extra {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return fmt.Errorf("--header %q: expected name:value", hide(h))
		}
		req.Header.Set(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	timeout, _ := cmd.Flags().GetDuration("timeout")
	client := &http.Client{
		Timeout: timeout,
		// Senders do not follow redirects: show the redirect itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return fail(fmt.Errorf("sending the test event to %s: %v", shown, err))
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))

	result := sendTestResult{URL: shown, Scheme: scheme, Status: resp.StatusCode, Answer: string(answer)}
	var accepted struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(answer, &accepted) == nil {
		result.EventID = accepted.ID
	}
	var out bytes.Buffer
	if jsonWanted(cmd) {
		enc := json.NewEncoder(&out)
		enc.SetIndent("", "  ")
		enc.Encode(result)
	} else {
		fmt.Fprintf(&out, "Sent a signed %s test event to %s\n", scheme, shown)
		fmt.Fprintf(&out, "%s %s\n", resp.Proto, resp.Status)
		if len(answer) > 0 {
			fmt.Fprintln(&out, oneLine(string(answer), 4096))
		}
	}
	if _, err := io.WriteString(cmd.OutOrStdout(), hide(out.String())); err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("the endpoint did not accept the test event (HTTP %d)", resp.StatusCode)
	}
	return nil
}

// adminAddress is the admin endpoint the command talks to.
func adminAddress(cmd *cobra.Command) (string, error) {
	address, _ := cmd.Flags().GetString("address")
	config, _ := cmd.Flags().GetString("config")
	adapter, _ := cmd.Flags().GetString("adapter")
	addr, err := caddycmd.DetermineAdminAPIAddress(address, nil, config, adapter)
	if err != nil {
		return "", fmt.Errorf("couldn't determine admin API address: %v", err)
	}
	return addr, nil
}

func adminGet(cmd *cobra.Command, uri string, out any) ([]byte, error) {
	return adminDo(cmd, http.MethodGet, uri, out)
}

// adminDo calls the admin API and decodes its JSON answer into out. It
// returns the raw answer too, for --json.
func adminDo(cmd *cobra.Command, method, uri string, out any) ([]byte, error) {
	addr, err := adminAddress(cmd)
	if err != nil {
		return nil, err
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, uri, nil, nil)
	if err != nil {
		return nil, adminError(addr, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the admin API's answer: %v", err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("decoding the admin API's answer: %v", err)
	}
	return raw, nil
}

var adminErrorPattern = regexp.MustCompile(`^caddy responded with error: HTTP (\d+): (.*)$`)

// adminError turns AdminAPIRequest's error into a message for people: the
// admin API's own {"error": "..."} text, or a hint when Caddy is not there.
func adminError(addr string, err error) error {
	m := adminErrorPattern.FindStringSubmatch(strings.TrimSpace(err.Error()))
	if m == nil {
		return fmt.Errorf("reaching Caddy's admin API at %s: %v (is Caddy running, and is this its admin address?)", addr, err)
	}
	var answer struct {
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(m[2]), &answer) == nil && answer.Error != "" {
		return fmt.Errorf("%s (HTTP %s)", answer.Error, m[1])
	}
	return fmt.Errorf("HTTP %s: %s", m[1], m[2])
}

func jsonWanted(cmd *cobra.Command) bool {
	v, _ := cmd.Flags().GetBool("json")
	return v
}

// printJSON prints the admin API's answer indented, or returns err.
func printJSON(cmd *cobra.Command, raw []byte, err error) error {
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := json.Indent(&b, bytes.TrimSpace(raw), "", "  "); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err = cmd.OutOrStdout().Write(b.Bytes())
	return err
}

// age is a short, rounded duration for tables.
func age(d time.Duration) string {
	switch {
	case d < time.Second:
		return "<1s"
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}

// oneLine shortens s to one line of at most n bytes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

func sortedKeys(h http.Header) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
