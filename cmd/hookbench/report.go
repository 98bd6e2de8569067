package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// report is everything one run measured. Its JSON form is what -json
// prints; its Markdown form is the table for the README.
type report struct {
	Conditions conditions `json:"conditions"`

	Respond   *throughput `json:"respond,omitempty"`    // Caddy's ceiling: respond 200
	ProxyNoop *throughput `json:"proxy_noop,omitempty"` // reverse_proxy to a no-op app
	ProxySlow *throughput `json:"proxy_slow,omitempty"` // reverse_proxy to an app that takes -slow
	// IngestBusy is hookinbox's answer rate (verified, stored with fsync,
	// 200) while the app holds its deliveries: a burst being absorbed.
	IngestBusy *throughput `json:"ingest_app_busy,omitempty"`
	// IngestTmpfs is IngestBusy with the store on tmpfs (tmpfs.go): the
	// same work without the disk, for reference.
	IngestTmpfs *throughput `json:"ingest_app_busy_tmpfs,omitempty"`
	// Ingest is the same while deliveries to a no-op app keep pace and
	// share the machine: the rate hookinbox sustains.
	Ingest *throughput `json:"ingest_delivering,omitempty"`
	// Delivered is hookinbox's delivery of the IngestBusy backlog to a no-op
	// app, with as many deliveries in flight as the load has connections.
	Delivered *throughput `json:"delivered,omitempty"`
	// DeliveredDefault is the same with the inbox's default concurrency.
	DeliveredDefault *throughput `json:"delivered_default_concurrency,omitempty"`
	// Backlog is how many events the first IngestBusy run left for the
	// delivery measurement.
	Backlog int64 `json:"backlog,omitempty"`

	Rates []rateFigures `json:"rates,omitempty"`
	Idle  *idleFigures  `json:"idle,omitempty"`
	Scale *scaleFigures `json:"scale,omitempty"`

	Checks []check  `json:"checks"`
	Notes  []string `json:"notes,omitempty"`
}

type conditions struct {
	Date        string    `json:"date"`
	GoVersion   string    `json:"go_version"`
	CPUs        int       `json:"cpus"`
	Duration    string    `json:"duration"`
	Warmup      string    `json:"warmup"`
	Runs        int       `json:"runs"`
	Connections int       `json:"connections"`
	BodyBytes   int       `json:"body_bytes"`
	SlowApp     string    `json:"slow_app"`
	Concurrency int       `json:"deliver_concurrency,omitempty"` // 0: hookinbox's default
	Backlog     int       `json:"backlog"`
	Rates       []float64 `json:"rates"`
}

// throughput is a median over interleaved runs, with every run kept so the
// spread (the machine's noise) is visible.
type throughput struct {
	Median float64   `json:"median_per_s"`
	Runs   []float64 `json:"runs_per_s"`
	// Failed counts answers other than 2xx and requests with no answer.
	Failed int64 `json:"failed"`
}

func (t *throughput) add(perSecond float64, failed int64) {
	t.Runs = append(t.Runs, perSecond)
	t.Failed += failed
	t.Median = median(append([]float64(nil), t.Runs...))
}

// rateFigures is one open-loop rate against an inbox.
type rateFigures struct {
	Rate   float64   `json:"rate_per_s"`
	Answer latencies `json:"answer"`
	// Delivery is from the sender's 200 to the app's arrival.
	Delivery    *latencies `json:"accept_to_delivery,omitempty"`
	Failed      int        `json:"failed"`
	Undelivered int        `json:"undelivered"`
}

type idleFigures struct {
	Answer   latencies `json:"answer"`
	Delivery latencies `json:"accept_to_delivery"`
	// Through is from the moment the sender sends to the app's arrival:
	// the answer and the delivery race, so this is not their sum.
	Through latencies `json:"send_to_delivery"`
}

type scaleFigures struct {
	Pending    int64         `json:"pending"`
	FillPerS   float64       `json:"fill_per_s"`
	Empty      *throughput   `json:"ingest_empty"`
	Full       *throughput   `json:"ingest_full"`
	RatesEmpty []rateFigures `json:"rates_empty,omitempty"`
	RatesFull  []rateFigures `json:"rates_full,omitempty"`
	// MemoryFilled is the server that took the fill, at rest right after it.
	MemoryFilled memStatus `json:"memory_after_fill"`
	FirstAnswer  float64   `json:"start_to_first_200_s"`
	// FirstAnswerEmpty is the same on an empty store: Caddy's own start.
	FirstAnswerEmpty float64 `json:"start_to_first_200_empty_s"`
	// MemorySoon is the restarted server with the backlog soon after the
	// ingest and latency runs (steady, and its CPU idle).
	MemorySoon memStatus `json:"memory_serving_soon"`
	// Memory is the restarted server with the backlog, at rest after the
	// ingest and latency runs: what the target is about.
	Memory memStatus `json:"memory_serving"`
}

// check is one target of the project, measured or not.
type check struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Target string  `json:"target"`
	// Result is PASS, MISS, or "not run" when its section did not run.
	Result string `json:"result"`
}

func passMiss(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// ratio guards against a zero denominator from a section that failed.
func ratio(a, b *throughput) (float64, bool) {
	if a == nil || b == nil || b.Median == 0 {
		return 0, false
	}
	return a.Median / b.Median, true
}

// judge fills Checks from the figures, in the order of the project's
// targets.
func (r *report) judge() {
	add := func(name, target string, value float64, measured, ok bool) {
		c := check{Name: name, Value: value, Target: target, Result: "not run"}
		if measured {
			c.Result = passMiss(ok)
		}
		r.Checks = append(r.Checks, c)
	}
	v, m := ratio(r.IngestBusy, r.Respond)
	add("ingest (app busy) / respond", "≥ 0.5", v, m, v >= 0.5)
	v, m = ratio(r.IngestBusy, r.ProxyNoop)
	add("ingest (app busy) / reverse_proxy no-op", "≥ 2", v, m, v >= 2)
	v, m = ratio(r.Delivered, r.ProxyNoop)
	add("delivered/s / reverse_proxy no-op req/s (same in flight)", "≥ 0.8", v, m, v >= 0.8)
	if r.Idle != nil {
		add("idle accept→delivery p50 (ms)", "< 2", r.Idle.Delivery.P50, r.Idle.Delivery.N > 0, r.Idle.Delivery.P50 < 2)
	} else {
		add("idle accept→delivery p50 (ms)", "< 2", 0, false, false)
	}
	s := r.Scale
	if s == nil {
		s = &scaleFigures{}
	}
	// The targets are set for a million pending; a run with -scale-events
	// says how many it had, so a smaller run is not read as the real one.
	pending := "1M"
	if s.Pending > 0 {
		pending = count(float64(s.Pending))
	}
	v, m = ratio(s.Full, s.Empty)
	add("ingest with "+pending+" pending / empty", "≥ 0.9", v, m, v >= 0.9)
	add("RSS with "+pending+" pending (MB)", "< 300", mb(s.Memory.RSS), s.Memory.RSS > 0, mb(s.Memory.RSS) < 300)
	add("start to first 200 with "+pending+" pending (s)", "< 3", s.FirstAnswer, s.FirstAnswer > 0, s.FirstAnswer < 3)
}

func mb(b int64) float64 { return float64(b) / 1e6 }

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeMarkdown prints the one table: figures first, then each target with
// its ratio and PASS/MISS.
func (r *report) writeMarkdown(w io.Writer) {
	c := r.Conditions
	fmt.Fprintf(w, "hookinbox benchmark, %s, %s, %d CPUs, loopback; %d × %s runs (median; %s warm-up), "+
		"%d connections, %d-byte Stripe-signed bodies, fsync on.\n\n",
		c.Date, c.GoVersion, c.CPUs, c.Runs, c.Duration, c.Warmup, c.Connections, c.BodyBytes)
	fmt.Fprintln(w, "| figure | value | target | result |")
	fmt.Fprintln(w, "| --- | --- | --- | --- |")
	row := func(figure, value, target, result string) {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", figure, value, target, result)
	}
	tput := func(figure string, t *throughput, unit string) {
		if t != nil {
			row(figure, rateText(t, unit), "", "")
		}
	}
	tput("Caddy `respond 200` (ceiling)", r.Respond, "req/s")
	tput("Caddy `reverse_proxy` → no-op app", r.ProxyNoop, "req/s")
	tput("Caddy `reverse_proxy` → "+c.SlowApp+" app", r.ProxySlow, "req/s")
	tput("hookinbox ingest, app busy (verify, fsync, 200)", r.IngestBusy, "req/s")
	tput("hookinbox ingest, app busy, store on tmpfs (reference: the same work, no disk)", r.IngestTmpfs, "req/s")
	tput("hookinbox ingest, delivering to a no-op app meanwhile", r.Ingest, "req/s")
	tput(fmt.Sprintf("hookinbox delivered to no-op app, %d in flight (backlog of %s)", c.Connections, count(float64(r.Backlog))), r.Delivered, "events/s")
	tput(fmt.Sprintf("hookinbox delivered to no-op app, %s (backlog of %s)", concurrencyText(c.Concurrency), count(float64(c.Backlog))), r.DeliveredDefault, "events/s")
	if v, ok := ratio(r.DeliveredDefault, r.ProxyNoop); ok {
		row("delivered/s at "+concurrencyText(c.Concurrency)+" / reverse_proxy no-op", strconv.FormatFloat(v, 'f', 2, 64), "", "")
	}
	if v, ok := ratio(r.IngestTmpfs, r.Respond); ok {
		row("ingest on tmpfs (no disk) / respond", strconv.FormatFloat(v, 'f', 2, 64), "", "")
	}
	if v, ok := ratio(r.IngestTmpfs, r.ProxyNoop); ok {
		row("ingest on tmpfs (no disk) / reverse_proxy no-op", strconv.FormatFloat(v, 'f', 2, 64), "", "")
	}
	if v, ok := ratio(r.Ingest, r.ProxyNoop); ok {
		row("ingest while delivering / reverse_proxy no-op", strconv.FormatFloat(v, 'f', 2, 64), "", "")
	}
	for _, rf := range r.Rates {
		row(fmt.Sprintf("ingest answer at %s req/s, p50 / p99 / p99.9", count(rf.Rate)), latencyText(rf.Answer, rf.Failed), "", "")
		if rf.Delivery != nil {
			row(fmt.Sprintf("accept→delivery at %s req/s, p50 / p99", count(rf.Rate)), deliveryText(*rf.Delivery, rf.Undelivered), "", "")
		}
	}
	if r.Idle != nil {
		row("idle ingest answer, p50 / p99", fmt.Sprintf("%s / %s ms", ms(r.Idle.Answer.P50), ms(r.Idle.Answer.P99)), "", "")
		row("idle accept→delivery, p50 / p99", fmt.Sprintf("%s / %s ms", ms(r.Idle.Delivery.P50), ms(r.Idle.Delivery.P99)), "", "")
		row("idle send→delivery, p50 / p99", fmt.Sprintf("%s / %s ms", ms(r.Idle.Through.P50), ms(r.Idle.Through.P99)), "", "")
	}
	if s := r.Scale; s != nil {
		row("scale: events pending", count(float64(s.Pending)), "", "")
		tput("scale: ingest, empty store", s.Empty, "req/s")
		tput("scale: ingest, backlog pending", s.Full, "req/s")
		for i := range s.RatesFull {
			e, f := s.RatesEmpty[i], s.RatesFull[i]
			row(fmt.Sprintf("scale: answer p99 at %s req/s, empty → backlog", count(f.Rate)),
				fmt.Sprintf("%s → %s ms", ms(e.Answer.P99), ms(f.Answer.P99)), "", "")
		}
		row("scale: RSS right after the fill (anon + file-mapped; peak; Go heap; mapped files by kind, MB)", memText(s.MemoryFilled), "", "")
		row("scale: RSS restarted on the backlog, soon after the runs", memText(s.MemorySoon), "", "")
		row("scale: RSS restarted on the backlog, at rest (2.5 minutes after the runs)", memText(s.Memory), "", "")
		row("scale: start to first 200, empty store (reference)", fmt.Sprintf("%.2f s", s.FirstAnswerEmpty), "", "")
	}
	for _, ch := range r.Checks {
		value := "—"
		if ch.Result != "not run" {
			value = strconv.FormatFloat(ch.Value, 'f', 2, 64)
		}
		row(ch.Name, value, ch.Target, ch.Result)
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
}

func rateText(t *throughput, unit string) string {
	parts := make([]string, len(t.Runs))
	for i, x := range t.Runs {
		parts[i] = count(x)
	}
	s := count(t.Median) + " " + unit
	if len(t.Runs) > 1 {
		s += " (runs: " + strings.Join(parts, ", ") + ")"
	}
	if t.Failed > 0 {
		s += fmt.Sprintf(", %d failed", t.Failed)
	}
	return s
}

func memText(m memStatus) string {
	text := fmt.Sprintf("%.0f MB (%.0f + %.0f; peak %.0f)", mb(m.RSS), mb(m.Anon), mb(m.File), mb(m.Peak))
	if m.GoHeap > 0 {
		text += fmt.Sprintf("; Go heap %.0f in use, %.0f free not yet returned", mb(m.GoHeap), mb(m.GoFree))
	}
	if len(m.Mapped) == 0 {
		return text
	}
	kinds := slices.Collect(maps.Keys(m.Mapped))
	slices.SortFunc(kinds, func(a, b string) int { return cmp.Compare(m.Mapped[b], m.Mapped[a]) })
	var parts []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, mb(m.Mapped[k])))
	}
	return text + "; mapped: " + strings.Join(parts, ", ")
}

func latencyText(l latencies, failed int) string {
	s := fmt.Sprintf("%s / %s / %s ms", ms(l.P50), ms(l.P99), ms(l.P999))
	if failed > 0 {
		s += fmt.Sprintf(", %d failed", failed)
	}
	return s
}

func deliveryText(l latencies, undelivered int) string {
	s := fmt.Sprintf("%s / %s ms", ms(l.P50), ms(l.P99))
	if undelivered > 0 {
		s += fmt.Sprintf(", %d not delivered in time", undelivered)
	}
	return s
}

// ms prints a latency with two significant decimals below 10 ms.
func ms(x float64) string {
	if x < 10 {
		return strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strconv.FormatFloat(x, 'f', 0, 64)
}

// count prints a whole number with thousands separators: 12,345.
func count(x float64) string {
	s := strconv.FormatInt(int64(x+0.5), 10)
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}

func concurrencyText(c int) string {
	if c == 0 {
		return "default concurrency (4)"
	}
	return fmt.Sprintf("concurrency %d", c)
}
