package main

import (
	"context"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// bench is one run of the harness: its servers, apps and load.
type bench struct {
	c      config
	dir    string
	bin    string
	report *report
	begun  time.Time
	// notesMu guards report.Notes: profiles finish in the background.
	notesMu sync.Mutex

	sender *sender // closed loop: connections bounded by -connections
	open   *sender // open loop and single requests: connections unbounded

	noop, slow, gated *app
	server            *caddyServer
	// The reference inbox with its store on tmpfs (tmpfs.go), if taken.
	tmpfs    *caddyServer
	parked   *app
	tmpfsDir string

	// Where each target listens.
	respondURL, proxyNoopURL, proxySlowURL, ingestURL, backlogURL, defaultURL, tmpfsURL string
}

func (b *bench) logf(format string, args ...any) {
	log.Printf("[%5.1fs] %s", time.Since(b.begun).Seconds(), fmt.Sprintf(format, args...))
}

// note records something a reader of the figures must know.
func (b *bench) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.notesMu.Lock()
	b.report.Notes = append(b.report.Notes, msg)
	b.notesMu.Unlock()
	b.logf("note: %s", msg)
}

// run takes every measurement. It returns the report even on error, with
// what was measured before it.
func run(c config) (*report, error) {
	b := &bench{c: c, report: newReport(c), begun: time.Now()}
	dir, err := os.MkdirTemp("", "hookbench-")
	if err != nil {
		return nil, err
	}
	b.dir = dir
	if c.keep {
		b.logf("keeping %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	b.bin = c.caddyBin
	if b.bin == "" {
		b.logf("building ./cmd/caddy")
		if b.bin, err = buildCaddy(dir); err != nil {
			return nil, err
		}
	}
	withInbox, err := hasHookinbox(b.bin)
	if err != nil {
		return nil, err
	}
	if !withInbox {
		b.note("%s has no hookinbox module: only Caddy's own figures were taken", b.bin)
	}

	runID := strconv.FormatUint(rand.Uint64()>>16, 36)
	sig, err := newSigner(benchSecret, c.bodySize, runID)
	if err != nil {
		return nil, err
	}
	seq := new(atomic.Int64)
	b.sender = &sender{client: newClient(c.conns), signer: sig, seq: seq}
	b.open = b.sender.with(newClient(0))

	if c.main {
		if err := b.measureMain(withInbox); err != nil {
			return b.report, err
		}
	}
	if c.scale && withInbox {
		if err := b.measureScale(); err != nil {
			return b.report, err
		}
	}
	b.logf("done")
	return b.report, nil
}

// measureMain takes every figure but the scale test's, on one caddy
// process that it stops when done.
func (b *bench) measureMain(withInbox bool) error {
	defer func() {
		b.server.stop()
		b.stopTmpfs()
		for _, a := range []*app{b.noop, b.slow, b.gated} {
			if a != nil {
				a.close()
			}
		}
	}()
	if err := b.startMain(withInbox); err != nil {
		return err
	}
	if withInbox {
		if err := b.waitReady(b.ingestURL, 20*time.Second); err != nil {
			return err
		}
		b.measureIdle()
		if root := tmpfsRoot(); b.c.tmpfs && root != "" {
			b.logf("starting the reference caddy, its store in %s", root)
			if err := b.startTmpfs(root); err != nil {
				return err
			}
		} else if b.c.tmpfs {
			b.note("no tmpfs at /dev/shm: the ingest reference without a disk was not taken")
		}
	}
	if err := b.measureThroughput(withInbox); err != nil {
		return err
	}
	if withInbox {
		b.measureRates()
	}
	return nil
}

// startMain starts the stand-in apps and the caddy that serves every
// target but the scale test: one process, a site per target.
func (b *bench) startMain(withInbox bool) error {
	var err error
	if b.noop, err = startApp(0); err != nil {
		return err
	}
	if b.slow, err = startApp(b.c.slow); err != nil {
		return err
	}
	if b.gated, err = startApp(0); err != nil {
		return err
	}
	addrs := make([]string, 7)
	for i := range addrs {
		if addrs[i], err = freeAddr(); err != nil {
			return err
		}
	}
	admin := addrs[0]
	sites := []site{
		{addrs[1], "respond 200"},
		{addrs[2], "reverse_proxy " + b.noop.addr},
		{addrs[3], "reverse_proxy " + b.slow.addr},
	}
	listen := addrs[1:4]
	b.respondURL, b.proxyNoopURL, b.proxySlowURL = "http://"+addrs[1]+"/", "http://"+addrs[2]+"/", "http://"+addrs[3]+"/"
	config := plainCaddyfile(admin, sites)
	if withInbox {
		var extra []string
		if b.c.concurrency > 0 {
			extra = append(extra, "concurrency "+strconv.Itoa(b.c.concurrency))
		}
		// The backlog inboxes' app holds their first attempts while a
		// backlog is built; the long timeout keeps them from failing
		// meanwhile. "backlog" has as many deliveries in flight as the
		// closed-loop load has requests, as reverse_proxy has;
		// "backlog-default" has the inbox default (or -deliver-concurrency).
		held := []string{"timeout 10m"}
		sites = append(sites,
			site{addrs[4], inboxDirectives("bench", b.noop.url(deliveredPath), extra...)},
			site{addrs[5], inboxDirectives("backlog", b.gated.url(deliveredPath), append(held, "concurrency "+strconv.Itoa(b.c.conns))...)},
			site{addrs[6], inboxDirectives("backlog-default", b.gated.url(deliveredPath), append(held, extra...)...)},
		)
		listen = addrs[1:7]
		b.ingestURL, b.backlogURL, b.defaultURL = "http://"+addrs[4]+"/", "http://"+addrs[5]+"/", "http://"+addrs[6]+"/"
		config = caddyfile(admin, filepath.Join(b.dir, "storage"), sites)
	}
	b.logf("starting caddy (config and log in %s)", b.dir)
	if b.server, err = startCaddy(b.bin, b.dir, "main", config, admin); err != nil {
		return err
	}
	return b.server.waitListening(30*time.Second, listen...)
}

// waitReady sends single events until one is answered 200: Caddy may
// listen before hookinbox's store is open.
func (b *bench) waitReady(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, status := b.open.send(context.Background(), url)
		if status == 200 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 within %v (last status %d; see the caddy log in %s, -keep keeps it)",
				url, timeout, status, b.dir)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// measureIdle sends single events one after another to the quiet server
// and times each from its 200 to its arrival at the app.
func (b *bench) measureIdle() {
	b.logf("idle: %d sequential events", b.c.idle)
	const warm = 10 // connections and the server's pools
	var answers, deliveries, throughs []time.Duration
	missed := 0
	for i := range warm + b.c.idle {
		seq := b.open.seq.Add(1)
		arrived := b.noop.watch(seq)
		start := time.Now()
		status := b.open.sendSeq(context.Background(), b.ingestURL, seq)
		answered := time.Now()
		if status != 200 {
			missed++
			continue
		}
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			missed++
			continue
		}
		at, _ := b.noop.arrival(seq)
		if i >= warm {
			answers = append(answers, answered.Sub(start))
			// The app can see the event before the sender has read its
			// 200: then the delivery took no time after the answer.
			deliveries = append(deliveries, max(0, at.Sub(answered)))
			throughs = append(throughs, at.Sub(start))
		}
		// A pause, so each event finds the dispatcher asleep, as an idle
		// inbox does.
		time.Sleep(5 * time.Millisecond)
	}
	b.report.Idle = &idleFigures{Answer: summarize(answers), Delivery: summarize(deliveries), Through: summarize(throughs)}
	if missed > 0 {
		b.note("idle: %d of %d events were not answered 200 or not delivered within 10s", missed, warm+b.c.idle)
	}
	b.logf("idle: answer p50 %.2f ms, accept→delivery p50 %.2f ms p99 %.2f ms",
		b.report.Idle.Answer.P50, b.report.Idle.Delivery.P50, b.report.Idle.Delivery.P99)
}

// measureThroughput runs the closed-loop targets in rounds, A B C … A B C,
// so a noisy moment of the machine hits one run of each, not one target.
func (b *bench) measureThroughput(withInbox bool) error {
	r := b.report
	r.Respond, r.ProxyNoop, r.ProxySlow = new(throughput), new(throughput), new(throughput)
	type target struct {
		name string
		into *throughput
		take func(run int) (float64, int64)
	}
	plain := func(url string) func(int) (float64, int64) {
		return func(int) (float64, int64) {
			res := b.sender.closedLoop(closedLoad{url: url, conns: b.c.conns, warmup: b.c.warmup, duration: b.c.duration})
			return res.perSecond(), res.Failed
		}
	}
	targets := []target{
		{"respond", r.Respond, plain(b.respondURL)},
		{"reverse_proxy no-op", r.ProxyNoop, plain(b.proxyNoopURL)},
		{"reverse_proxy slow", r.ProxySlow, plain(b.proxySlowURL)},
	}
	if withInbox {
		r.IngestBusy, r.Ingest, r.Delivered, r.DeliveredDefault = new(throughput), new(throughput), new(throughput), new(throughput)
		targets = append(targets,
			target{"hookinbox ingest, app busy", r.IngestBusy, b.backlogRun},
			target{"hookinbox delivered, default concurrency", r.DeliveredDefault, b.defaultBacklogRun},
			target{"hookinbox ingest, delivering", r.Ingest, b.ingestRun},
		)
	}
	if b.tmpfs != nil {
		r.IngestTmpfs = new(throughput)
		targets = append(targets, target{"hookinbox ingest, tmpfs", r.IngestTmpfs, b.tmpfsRun})
	}
	for run := range b.c.runs {
		for _, t := range targets {
			perS, failed := t.take(run)
			t.into.add(perS, failed)
			b.logf("throughput run %d/%d: %-28s %s/s%s", run+1, b.c.runs, t.name, count(perS), failedText(failed))
		}
	}
	return nil
}

func failedText(n int64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d failed)", n)
}

// ingestRun is one closed-loop run against the inbox that forwards to the
// no-op app, which takes each event as it comes: ingest and delivery share
// the machine, so this is the rate hookinbox sustains, not the rate at which
// it absorbs a burst (backlogRun). Its deliveries are waited for before the
// next target runs, so they do not steal the next target's CPU.
func (b *bench) ingestRun(run int) (float64, int64) {
	b.noop.reset()
	if run == 0 {
		b.profile("ingest-delivering.pprof", b.c.warmup+b.c.duration)
	}
	res := b.sender.closedLoop(closedLoad{url: b.ingestURL, conns: b.c.conns, warmup: b.c.warmup, duration: b.c.duration})
	b.drain(b.noop, int(res.Accepted), "ingest")
	return res.perSecond(), res.Failed
}

// profile takes a CPU profile of the main caddy for d, in the background,
// into the -profile directory.
func (b *bench) profile(name string, d time.Duration) { b.profileOf(b.server, name, d) }

// profileOf is profile of any caddy the harness started.
func (b *bench) profileOf(s *caddyServer, name string, d time.Duration) {
	if b.c.profile == "" {
		return
	}
	path := filepath.Join(b.c.profile, name)
	go func() {
		if err := os.MkdirAll(b.c.profile, 0o755); err != nil {
			b.note("CPU profile: %v", err)
			return
		}
		if err := s.pprof(fmt.Sprintf("profile?seconds=%d", max(1, int(d.Seconds()))), path); err != nil {
			b.note("CPU profile %s: %v", name, err)
			return
		}
		b.logf("CPU profile written to %s", path)
	}()
}

// drain waits until n events have reached a, noting it if they do not.
func (b *bench) drain(a *app, n int, what string) {
	start := time.Now()
	if !a.waitCount(context.Background(), n, b.c.drainTimeout) {
		b.note("%s: only %d of %d accepted events were delivered after %v; the next figures may be disturbed by the rest",
			what, a.count(), n, b.c.drainTimeout)
		return
	}
	if d := time.Since(start); d > time.Second {
		b.logf("%s: deliveries caught up in %.1fs", what, d.Seconds())
	}
}

// backlogRun measures ingest during a burst the app cannot take yet, then
// delivery alone, with as many deliveries in flight as the load has
// connections (reverse_proxy's figure is taken with that many requests in
// flight). The app holds the first attempts, as a busy app would, so
// the closed-loop load measures hookinbox's answer alone (verify, store,
// fsync, 200) while everything it accepts piles up in the store. Then the
// app lets go, and the arrival rate over the middle 80% of that backlog (no
// start-up, no tail) is the delivery rate, added to report.Delivered.
func (b *bench) backlogRun(run int) (float64, int64) {
	b.gated.reset()
	b.gated.hold()
	switch {
	case run == 0:
		// Done before the load ends: the delivery profile starts then.
		b.profile("ingest.pprof", b.c.duration)
	case run == b.c.runs-1:
		// Later runs, on a larger store, are often slower: this profile
		// is the one to hold against the first.
		b.profile("ingest-last.pprof", b.c.duration)
	}
	res := b.sender.closedLoop(closedLoad{url: b.backlogURL, conns: b.c.conns, warmup: b.c.warmup, duration: b.c.duration})
	if run == 0 {
		// The drain's length is not known beforehand; -duration is
		// enough to see where it spends its time.
		b.profile("delivery.pprof", b.c.duration)
	}
	b.gated.release()
	b.drain(b.gated, int(res.Accepted), "backlog")
	delivered := steadyRate(b.gated.arrivals())
	b.report.Delivered.add(delivered, 0)
	if b.report.Backlog == 0 {
		b.report.Backlog = res.Accepted
	}
	b.logf("throughput run %d/%d: %-28s %s/s (backlog of %s, %d in flight)", run+1, b.c.runs, "hookinbox delivered", count(delivered), count(float64(res.Accepted)), b.c.conns)
	return res.perSecond(), res.Failed
}

// defaultBacklogRun is the delivery half of backlogRun on the inbox with
// the default concurrency: the rate a user gets without tuning it.
func (b *bench) defaultBacklogRun(int) (float64, int64) {
	b.gated.reset()
	b.gated.hold()
	res := b.sender.closedLoop(closedLoad{url: b.defaultURL, conns: b.c.conns, duration: time.Hour, limit: int64(b.c.backlog)})
	b.gated.release()
	b.drain(b.gated, int(res.Accepted), "backlog")
	return steadyRate(b.gated.arrivals()), res.Failed
}

// steadyRate is the arrival rate between the 10th and the 90th percentile
// of arrival times.
func steadyRate(times []time.Time) float64 {
	if len(times) < 10 {
		return 0
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	lo, hi := len(times)/10, len(times)*9/10
	d := times[hi].Sub(times[lo])
	if d <= 0 {
		return 0
	}
	return float64(hi-lo) / d.Seconds()
}

// measureRates runs the open loop at each rate against the inbox.
func (b *bench) measureRates() {
	for _, rate := range b.c.rates {
		rf := b.rateRun(b.ingestURL, b.noop, rate)
		b.report.Rates = append(b.report.Rates, rf)
		b.logf("open loop %s req/s: answer p50 %.2f p99 %.2f p99.9 %.2f ms; accept→delivery p50 %.2f p99 %.2f ms%s",
			count(rate), rf.Answer.P50, rf.Answer.P99, rf.Answer.P999, rf.Delivery.P50, rf.Delivery.P99,
			failedText(int64(rf.Failed)))
	}
}

// rateRun is one open-loop run. If a is not nil, it also times each
// accepted event from its 200 to its arrival at a.
func (b *bench) rateRun(url string, a *app, rate float64) rateFigures {
	if a != nil {
		a.reset()
	}
	shots := b.open.openLoop(url, rate, b.c.warmup, b.c.duration)
	rf := rateFigures{Rate: rate}
	answers := make([]time.Duration, 0, len(shots))
	var accepted []shot
	for _, s := range shots {
		answers = append(answers, s.latency())
		if s.status == 200 {
			accepted = append(accepted, s)
		} else {
			rf.Failed++
		}
	}
	rf.Answer = summarize(answers)
	if a == nil {
		return rf
	}
	deadline := time.Now().Add(b.c.drainTimeout)
	var deliveries []time.Duration
	for _, s := range accepted {
		select {
		case <-a.watch(s.seq):
		case <-time.After(time.Until(deadline)):
		}
		at, ok := a.arrival(s.seq)
		if !ok {
			rf.Undelivered++
			continue
		}
		deliveries = append(deliveries, max(0, at.Sub(s.answered)))
	}
	d := summarize(deliveries)
	rf.Delivery = &d
	return rf
}
