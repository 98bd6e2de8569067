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
	// NATS is IngestBusy, Ingest and Delivered on the nats store.
	NATS *storeFigures `json:"nats,omitempty"`

	Rates []rateFigures `json:"rates,omitempty"`
	Idle  *idleFigures  `json:"idle,omitempty"`
	Scale *scaleFigures `json:"scale,omitempty"`

	Checks []check  `json:"checks"`
	Notes  []string `json:"notes,omitempty"`
}

// storeFigures are a store's inbox rows, measured as the Badger store's.
type storeFigures struct {
	IngestBusy *throughput `json:"ingest_app_busy"`
	Ingest     *throughput `json:"ingest_delivering"`
	Delivered  *throughput `json:"delivered"`
}

type conditions struct {
	Date        string    `json:"date"`
	Bodies      string    `json:"bodies"`
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
	P99Rate     float64   `json:"p99_rate"`
	P99Seconds  float64   `json:"p99_seconds"`
}

// throughput is a median over interleaved runs, with every run kept so the
// spread (the machine's noise) is visible.
type throughput struct {
	Median float64   `json:"median_per_s"`
	Runs   []float64 `json:"runs_per_s"`
	// Failed counts answers other than 2xx and requests with no answer.
	Failed int64 `json:"failed"`
	// CPU is Caddy's CPU per request or event in µs, the median of CPURuns;
	// each row defines its window and what it divides by (measure.go).
	CPU     float64   `json:"cpu_us_per_event,omitempty"`
	CPURuns []float64 `json:"cpu_us_per_event_runs,omitempty"`
	// ServersCPU is the same for the store's own servers (the three
	// nats-servers, summed).
	ServersCPU     float64   `json:"servers_cpu_us_per_event,omitempty"`
	ServersCPURuns []float64 `json:"servers_cpu_us_per_event_runs,omitempty"`
}

// runFigures is one run of a closed-loop target.
type runFigures struct {
	perS   float64
	failed int64
	// events is what the CPU is divided by.
	events int64
	// cpu and serversCPU are µs per event; 0 when not measured.
	cpu, serversCPU float64
}

func (t *throughput) add(r runFigures) {
	t.Runs = append(t.Runs, r.perS)
	t.Failed += r.failed
	t.Median = median(slices.Clone(t.Runs))
	if r.cpu > 0 {
		t.CPURuns = append(t.CPURuns, r.cpu)
		t.CPU = median(slices.Clone(t.CPURuns))
	}
	if r.serversCPU > 0 {
		t.ServersCPURuns = append(t.ServersCPURuns, r.serversCPU)
		t.ServersCPU = median(slices.Clone(t.ServersCPURuns))
	}
}

// rateFigures is one open-loop rate against an inbox.
type rateFigures struct {
	Rate float64 `json:"rate_per_s"`
	// Seconds is the counted length of the run.
	Seconds float64   `json:"seconds"`
	Answer  latencies `json:"answer"`
	// CPU is Caddy's per event accepted, from the load's start until the
	// last has been delivered (ingest alone when nothing is delivered).
	CPU float64 `json:"cpu_us_per_event,omitempty"`
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
	// CPU is Caddy's per event, the whole job of each event alone.
	CPU float64 `json:"cpu_us_per_event,omitempty"`
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

// cpuRatio is ratio of the CPU per event.
func cpuRatio(a, b *throughput) (float64, bool) {
	if a == nil || b == nil || a.CPU == 0 || b.CPU == 0 {
		return 0, false
	}
	return a.CPU / b.CPU, true
}

// judge fills Checks from the figures, in the order of the project's
// targets (issue #17 for the CPU and the answer, #14 for nats).
func (r *report) judge() {
	add := func(name, target string, value float64, measured, ok bool) {
		c := check{Name: name, Value: value, Target: target, Result: "not run"}
		if measured {
			c.Result = passMiss(ok)
		}
		r.Checks = append(r.Checks, c)
	}
	v, m := cpuRatio(r.Ingest, r.ProxyNoop)
	add("CPU: whole job per event / `reverse_proxy` per request", "≤ 1.5", v, m, v <= 1.5)
	v, m = cpuRatio(r.IngestBusy, r.Respond)
	add("CPU: ingest alone per event / `respond` per request", "≤ 2.5", v, m, v <= 2.5)
	c := r.Conditions
	p99 := c.P99Rate
	var at *rateFigures
	for i := range r.Rates {
		if r.Rates[i].Rate == p99 {
			at = &r.Rates[i]
		}
	}
	name := fmt.Sprintf("answer p99 at %s req/s for %gs, app taking deliveries (ms)", count(p99), c.P99Seconds)
	if at != nil {
		add(name, "< 50", at.Answer.P99, at.Answer.N > 0, at.Answer.P99 < 50 && at.Failed == 0)
	} else {
		add(name, "< 50", 0, false, false)
	}
	if r.Idle != nil {
		add("idle accept→delivery p50 (ms)", "< 2", r.Idle.Delivery.P50, r.Idle.Delivery.N > 0, r.Idle.Delivery.P50 < 2)
	} else {
		add("idle accept→delivery p50 (ms)", "< 2", 0, false, false)
	}
	if r.NATS != nil {
		v, m = ratio(r.NATS.IngestBusy, r.IngestBusy)
		add("nats ingest / badger ingest, app busy, same run", "≥ 0.25", v, m, v >= 0.25)
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
	// The memory target holds at every reading after the load, not only
	// at rest.
	rss := max(s.MemorySoon.RSS, s.Memory.RSS)
	add("RSS with "+pending+" pending, soon after and at rest, the larger (MB)", "< 300", mb(rss), s.Memory.RSS > 0, mb(rss) < 300)
	add("start to first 200 with "+pending+" pending (s)", "< 3", s.FirstAnswer, s.FirstAnswer > 0, s.FirstAnswer < 3)
}

func mb(b int64) float64 { return float64(b) / 1e6 }

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeMarkdown prints the one table: figures first, each with the
// server's CPU per request or event, then context ratios, then each target
// with its value and PASS/MISS.
func (r *report) writeMarkdown(w io.Writer) {
	c := r.Conditions
	fmt.Fprintf(w, "hookinbox benchmark, %s, %s, %d CPUs, loopback; %d × %s runs (median; %s warm-up), "+
		"%d connections, %d-byte %s, fsync on. "+
		"CPU: the server process's own (user + system, all threads, /proc/<pid>/stat), per request or event, "+
		"median of the runs; each row says over which window.\n\n",
		c.Date, c.GoVersion, c.CPUs, c.Runs, c.Duration, c.Warmup, c.Connections, c.BodyBytes, cmp.Or(c.Bodies, "bodies"))
	fmt.Fprintln(w, "| figure | value | CPU per request or event | target | result |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- |")
	row := func(figure, value, cpu, target, result string) {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", figure, value, cpu, target, result)
	}
	tput := func(figure string, t *throughput, unit string) {
		if t != nil {
			row(figure, rateText(t, unit), cpuText(t.CPU, t.ServersCPU), "", "")
		}
	}
	tput("Caddy `respond 200` (ceiling); CPU per request", r.Respond, "req/s")
	tput("Caddy `reverse_proxy` → no-op app; CPU per request", r.ProxyNoop, "req/s")
	tput("Caddy `reverse_proxy` → "+c.SlowApp+" app; CPU per request", r.ProxySlow, "req/s")
	tput("hookinbox **ingest alone**: the app holds its deliveries (verify, store with fsync, 200); CPU over the load per event accepted", r.IngestBusy, "req/s")
	tput("hookinbox ingest alone, store on tmpfs (reference: the same work, no disk)", r.IngestTmpfs, "req/s")
	tput(fmt.Sprintf("hookinbox **whole job**: the app takes each event, %s (verify, store, 200, deliver, record); CPU from the first request until the last accepted event is delivered, per event", concurrencyText(c.Concurrency)), r.Ingest, "req/s")
	tput(fmt.Sprintf("hookinbox delivery half: the held backlog (%s events) delivered, %d in flight; CPU from the app's release until the last arrives, per event", count(float64(r.Backlog)), c.Connections), r.Delivered, "events/s")
	tput(fmt.Sprintf("hookinbox delivery half at %s (backlog of %s)", concurrencyText(c.Concurrency), count(float64(c.Backlog))), r.DeliveredDefault, "events/s")
	if n := r.NATS; n != nil {
		tput("nats store (3 nats-servers, R3, `sync_interval: always`): ingest alone, as above; CPU of Caddy + the nats-servers", n.IngestBusy, "req/s")
		tput("nats store: whole job, as above", n.Ingest, "req/s")
		tput(fmt.Sprintf("nats store: delivery half, %d in flight", c.Connections), n.Delivered, "events/s")
	}
	for _, rf := range r.Rates {
		row(fmt.Sprintf("answer at %s req/s open loop for %gs (app taking deliveries), p50 / p99 / p99.9; CPU whole job per event", count(rf.Rate), rf.Seconds),
			latencyText(rf.Answer, rf.Failed), cpuText(rf.CPU, 0), "", "")
		if rf.Delivery != nil {
			row(fmt.Sprintf("accept→delivery at %s req/s, p50 / p99", count(rf.Rate)), deliveryText(*rf.Delivery, rf.Undelivered), "", "", "")
		}
	}
	if r.Idle != nil {
		row("idle: answer, p50 / p99; CPU whole job per event, one at a time", fmt.Sprintf("%s / %s ms", ms(r.Idle.Answer.P50), ms(r.Idle.Answer.P99)), cpuText(r.Idle.CPU, 0), "", "")
		row("idle: accept→delivery, p50 / p99", fmt.Sprintf("%s / %s ms", ms(r.Idle.Delivery.P50), ms(r.Idle.Delivery.P99)), "", "", "")
		row("idle: send→delivery, p50 / p99", fmt.Sprintf("%s / %s ms", ms(r.Idle.Through.P50), ms(r.Idle.Through.P99)), "", "", "")
	}
	contextRatio := func(name string, a, b *throughput) {
		if v, ok := ratio(a, b); ok {
			row("context, req/s: "+name, strconv.FormatFloat(v, 'f', 2, 64), "", "", "")
		}
	}
	contextRatio("ingest alone / respond", r.IngestBusy, r.Respond)
	contextRatio("ingest alone / reverse_proxy no-op", r.IngestBusy, r.ProxyNoop)
	contextRatio("whole job / reverse_proxy no-op", r.Ingest, r.ProxyNoop)
	contextRatio(fmt.Sprintf("delivered/s at %d in flight / reverse_proxy no-op", c.Connections), r.Delivered, r.ProxyNoop)
	contextRatio("delivered/s at "+concurrencyText(c.Concurrency)+" / reverse_proxy no-op", r.DeliveredDefault, r.ProxyNoop)
	contextRatio("ingest on tmpfs (no disk) / respond", r.IngestTmpfs, r.Respond)
	if s := r.Scale; s != nil {
		row("scale: events pending", count(float64(s.Pending)), "", "", "")
		tput("scale: ingest, empty store; CPU over the load per event", s.Empty, "req/s")
		tput("scale: ingest, backlog pending; likewise", s.Full, "req/s")
		for i := range s.RatesFull {
			e, f := s.RatesEmpty[i], s.RatesFull[i]
			row(fmt.Sprintf("scale: answer p99 at %s req/s, empty → backlog", count(f.Rate)),
				fmt.Sprintf("%s → %s ms", ms(e.Answer.P99), ms(f.Answer.P99)), cpuText(e.CPU, 0)+" → "+cpuText(f.CPU, 0), "", "")
		}
		row("scale: RSS right after the fill (anon + file-mapped; peak; Go heap; mapped files by kind, MB)", memText(s.MemoryFilled), "", "", "")
		row("scale: RSS restarted on the backlog, soon after the runs", memText(s.MemorySoon), "", "", "")
		row("scale: RSS restarted on the backlog, at rest (2.5 minutes after the runs)", memText(s.Memory), "", "", "")
		row("scale: start to first 200, empty store (reference)", fmt.Sprintf("%.2f s", s.FirstAnswerEmpty), "", "", "")
	}
	for _, ch := range r.Checks {
		value := "—"
		if ch.Result != "not run" {
			value = strconv.FormatFloat(ch.Value, 'f', 2, 64)
		}
		row(ch.Name, value, "", ch.Target, ch.Result)
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
}

// cpuText is a CPU per event in µs, with the store's servers' beside it
// when measured; "" when not measured.
func cpuText(caddy, servers float64) string {
	if caddy == 0 {
		return ""
	}
	s := fmt.Sprintf("%.0f µs", caddy)
	if servers > 0 {
		s = fmt.Sprintf("Caddy %s + nats-servers %.0f µs", s, servers)
	}
	return s
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
