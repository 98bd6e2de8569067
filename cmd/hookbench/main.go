// Command hookbench measures hookinbox against Caddy on loopback, in one run:
// Caddy's ceiling (respond 200), what users have without hookinbox
// (reverse_proxy to a no-op and to a slow app), hookinbox's ingest
// (throughput, and answer latency at fixed rates), its delivery (events/s,
// accept-to-delivery latency), the same inboxes on the nats store (a local
// cluster of three nats-servers), and with -scale the same with a million
// events pending. Every row has the CPU that the server's processes spent
// per request or event, read from /proc, which does not depend on the load
// generator's share of the two cores as a throughput does. For reference, it
// also measures ingest with the store on tmpfs, which takes the disk out of
// the figure. It builds ./cmd/caddy, runs it on generated Caddyfiles with
// storage in a temporary directory, and prints one Markdown table of
// figures and PASS/MISS against the project's targets (-json for machines).
//
//	go run ./cmd/hookbench                      # ~10 minutes
//	go run ./cmd/hookbench -duration 3s -runs 1 -p99-duration 5s  # a quick look
//	go run ./cmd/hookbench -scale               # adds the 1M-pending figures (minutes)
//
// Load and server share the machine: figures from a noisy machine are noisy.
// Throughput runs are interleaved across targets (A B C A B C …) and the
// median is reported, so noise hits every target alike.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

type config struct {
	duration, warmup time.Duration
	runs             int
	conns            int
	rates            rateList
	p99Rate          float64
	p99Duration      time.Duration
	sender           string
	bodySize         int
	slow             time.Duration
	idle             int
	backlog          int
	drainTimeout     time.Duration
	concurrency      int

	main        bool
	tmpfs       bool
	nats        bool
	scale       bool
	scaleEvents int64
	fillConns   int

	caddyBin string
	profile  string
	jsonOut  bool
	keep     bool
}

// rateList is a comma-separated list of requests per second.
type rateList []float64

func (r *rateList) String() string {
	parts := make([]string, len(*r))
	for i, x := range *r {
		parts[i] = strconv.FormatFloat(x, 'f', -1, 64)
	}
	return strings.Join(parts, ",")
}

func (r *rateList) Set(s string) error {
	*r = nil
	for _, part := range strings.Split(s, ",") {
		x, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
		if err != nil || x <= 0 {
			return fmt.Errorf("%q is not a positive rate", part)
		}
		*r = append(*r, x)
	}
	return nil
}

func parseFlags() config {
	c := config{rates: rateList{500, 1000, 2000}}
	flag.DurationVar(&c.duration, "duration", 5*time.Second, "counted length of each measurement")
	flag.DurationVar(&c.warmup, "warmup", time.Second, "uncounted load before each measurement")
	flag.IntVar(&c.runs, "runs", 3, "throughput runs per target, interleaved across targets; the median is reported")
	flag.IntVar(&c.conns, "connections", 64, "concurrent connections of the closed-loop (throughput) load")
	flag.Var(&c.rates, "rates", "comma-separated fixed `rates` (req/s) of the open-loop latency runs")
	flag.Float64Var(&c.p99Rate, "p99-rate", 2000, "the open-loop rate (req/s) of the answer-p99 target; added to -rates if missing")
	flag.DurationVar(&c.p99Duration, "p99-duration", 30*time.Second, "counted length of the open-loop run at -p99-rate (the other rates run -duration)")
	flag.StringVar(&c.sender, "sender", "hotmart", "the events sent: hotmart (webhook 2.0 JSON, X-HOTMART-HOTTOK checked) or stripe (Stripe-Signature, HMAC-SHA256)")
	flag.IntVar(&c.bodySize, "body", 1024, "body size in bytes")
	flag.DurationVar(&c.slow, "slow", 50*time.Millisecond, "how long the slow app takes to answer")
	flag.IntVar(&c.backlog, "backlog", 20000, "events in the backlog whose delivery rate is measured at the default concurrency")
	flag.IntVar(&c.idle, "idle", 200, "sequential requests of the idle accept-to-delivery latency")
	flag.DurationVar(&c.drainTimeout, "drain-timeout", 2*time.Minute, "how long to wait for deliveries to catch up between measurements (the nats backlogs take tens of seconds)")
	flag.IntVar(&c.concurrency, "deliver-concurrency", 0, "the concurrency option of the inboxes but the one measured at -connections deliveries in flight (0: hookinbox's default)")
	flag.BoolVar(&c.main, "main", true, "take the main figures (-main=false -scale takes only the scale figures)")
	flag.BoolVar(&c.scale, "scale", false, "also measure with -scale-events pending (takes minutes)")
	flag.Int64Var(&c.scaleEvents, "scale-events", 1_000_000, "events pending in the -scale measurements")
	flag.IntVar(&c.fillConns, "fill-connections", 256, "concurrent connections that fill the -scale backlog")
	flag.StringVar(&c.caddyBin, "caddy", "", "use this caddy binary instead of building ./cmd/caddy (without hookinbox, only the Caddy figures are taken)")
	flag.StringVar(&c.profile, "profile", "", "write profiles of caddy into this `directory`: ingest.pprof, ingest-delivering.pprof, delivery.pprof (64 in flight) and delivery-default.pprof (the default concurrency) (CPU, first run of each), ingest-last.pprof and ingest-tmpfs.pprof (CPU, last ingest run on disk and on tmpfs), the same with a nats- prefix for the nats caddy, heap-fill.pprof and heap-scale.pprof (memory after the -scale fill, and of the restarted server with the backlog)")
	flag.BoolVar(&c.jsonOut, "json", false, "print JSON instead of the Markdown table")
	flag.BoolVar(&c.tmpfs, "tmpfs", true, "also measure ingest with the store on tmpfs (/dev/shm), which shows what the disk costs")
	flag.BoolVar(&c.nats, "nats", true, "also measure the nats store, on a local cluster of three nats-server processes built from go.mod's module")
	flag.BoolVar(&c.keep, "keep", false, "keep the temporary directory (Caddyfiles, logs, storage)")
	flag.Parse()
	return c
}

func (c config) validate() error {
	switch {
	case c.duration <= 0 || c.warmup < 0:
		return errors.New("-duration must be positive and -warmup not negative")
	case c.runs < 1 || c.conns < 1 || c.fillConns < 1:
		return errors.New("-runs, -connections and -fill-connections must be at least 1")
	case c.idle < 1 || c.backlog < 10:
		return errors.New("-idle must be at least 1 and -backlog at least 10")
	case c.p99Rate <= 0 || c.p99Duration <= 0:
		return errors.New("-p99-rate and -p99-duration must be positive")
	case c.scaleEvents < 1:
		return errors.New("-scale-events must be at least 1")
	case !c.main && !c.scale:
		return errors.New("-main=false leaves nothing to measure without -scale")
	}
	return nil
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("hookbench: ")
	c := parseFlags()
	if err := c.validate(); err != nil {
		log.Fatal(err)
	}
	exitOnSignal()
	r, err := run(c)
	if r != nil {
		r.judge()
		if c.jsonOut {
			if err := r.writeJSON(os.Stdout); err != nil {
				log.Fatal(err)
			}
		} else {
			r.writeMarkdown(os.Stdout)
		}
	}
	if err != nil {
		log.Fatal(err)
	}
}

// allRates are -rates with -p99-rate, in ascending order.
func (c config) allRates() []float64 {
	rates := slices.Clone(c.rates)
	if !slices.Contains(rates, c.p99Rate) {
		rates = append(rates, c.p99Rate)
	}
	slices.Sort(rates)
	return rates
}

func newReport(c config) *report {
	return &report{Conditions: conditions{
		Date:        time.Now().UTC().Format("2006-01-02"),
		GoVersion:   runtime.Version(),
		CPUs:        runtime.NumCPU(),
		Duration:    c.duration.String(),
		Warmup:      c.warmup.String(),
		Runs:        c.runs,
		Connections: c.conns,
		BodyBytes:   c.bodySize,
		SlowApp:     c.slow.String(),
		Concurrency: c.concurrency,
		Backlog:     c.backlog,
		Rates:       c.allRates(),
		P99Rate:     c.p99Rate,
		P99Seconds:  c.p99Duration.Seconds(),
	}}
}
