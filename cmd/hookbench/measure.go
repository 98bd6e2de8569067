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
	// unsettled counts CPU windows that started before their processes
	// were idle (settle gave up).
	unsettled int

	sender *sender // closed loop: connections bounded by -connections
	open   *sender // open loop and single requests: connections unbounded

	noop, slow, gated *app
	server            *caddyServer
	// The reference inbox with its store on tmpfs (tmpfs.go), if taken.
	tmpfs       *caddyServer
	parked      *app
	tmpfsDir    string
	forgetTmpfs func()

	// The inboxes of each store; nats is nil when its rows are not taken.
	badger, nats *storeTargets
	natsCluster  *natsCluster

	// Where each target listens.
	respondURL, proxyNoopURL, proxySlowURL, defaultURL, tmpfsURL string
}

// storeTargets is one store's pair of inboxes on one Caddy. busy's app
// holds its deliveries while the load runs (ingest alone), then lets go
// (the delivery half); whole's app takes each event as it comes.
type storeTargets struct {
	// prefix names its profiles ("" for badger, "nats-").
	prefix string
	server *caddyServer
	// servers are the store's own processes (the nats-servers), whose CPU
	// is reported beside Caddy's.
	servers           []cpuReader
	busyURL, wholeURL string
	gated, noop       *app
	// Where its figures go.
	busy, whole, delivered *throughput
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
		defer onExit(func() { os.RemoveAll(dir) })()
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
	events, err := newScheme(c.sender, c.bodySize, runID)
	if err != nil {
		return nil, err
	}
	b.report.Conditions.Bodies = events.describe()
	seq := new(atomic.Int64)
	b.sender = &sender{client: newClient(c.conns), scheme: events, seq: seq}
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
// process (and one more per reference store) that it stops when done.
func (b *bench) measureMain(withInbox bool) error {
	defer func() {
		b.server.stop()
		b.stopTmpfs()
		b.stopNATS()
		for _, a := range []*app{b.noop, b.slow, b.gated} {
			if a != nil {
				a.close()
			}
		}
		if b.unsettled > 0 {
			b.note("%d CPU windows started before the servers were idle (after waiting %v): their CPU per event includes work left from the target before",
				b.unsettled, settleLimit)
		}
	}()
	if err := b.startMain(withInbox); err != nil {
		return err
	}
	if withInbox {
		if err := b.waitReady(b.badger.wholeURL, 20*time.Second); err != nil {
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
		if b.c.nats {
			if err := b.startNATS(); err != nil {
				b.stopNATS()
				b.nats = nil
				b.note("nats rows not taken: %v", err)
			}
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
// target but the scale test and the reference stores: one process, a site
// per target.
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
		// "backlog-default" has the inbox default concurrency (or
		// -deliver-concurrency): the delivery rate a user gets untuned.
		sites = append(sites, b.inboxSites(addrs[4], addrs[5], b.noop, b.gated)...)
		sites = append(sites, site{addrs[6], inboxDirectives(b.sender.scheme.verify(), "backlog-default", b.gated.url(deliveredPath),
			append([]string{"timeout 10m"}, b.extraOptions()...)...)})
		listen = addrs[1:7]
		b.defaultURL = "http://" + addrs[6] + "/"
		config = caddyfile(admin, badgerStore(filepath.Join(b.dir, "storage")), sites)
	}
	b.logf("starting caddy (config and log in %s)", b.dir)
	if b.server, err = startCaddy(b.bin, b.dir, "main", config, admin); err != nil {
		return err
	}
	if withInbox {
		r := b.report
		r.IngestBusy, r.Ingest, r.Delivered = new(throughput), new(throughput), new(throughput)
		b.badger = &storeTargets{
			server:  b.server,
			busyURL: "http://" + addrs[5] + "/", wholeURL: "http://" + addrs[4] + "/",
			gated: b.gated, noop: b.noop,
			busy: r.IngestBusy, whole: r.Ingest, delivered: r.Delivered,
		}
	}
	return b.server.waitListening(30*time.Second, listen...)
}

// extraOptions are the inbox options that -deliver-concurrency sets.
func (b *bench) extraOptions() []string {
	if b.c.concurrency > 0 {
		return []string{"concurrency " + strconv.Itoa(b.c.concurrency)}
	}
	return nil
}

// inboxSites are a store's two measured inboxes: "bench" on wholeAddr
// forwards to noop, which takes each event as it comes; "backlog" on
// busyAddr forwards to gated, which holds the first attempts while a
// backlog is built (the long timeout keeps them from failing meanwhile),
// with as many deliveries in flight as the closed-loop load has requests,
// as reverse_proxy has.
func (b *bench) inboxSites(wholeAddr, busyAddr string, noop, gated *app) []site {
	verify := b.sender.scheme.verify()
	return []site{
		{wholeAddr, inboxDirectives(verify, "bench", noop.url(deliveredPath), b.extraOptions()...)},
		{busyAddr, inboxDirectives(verify, "backlog", gated.url(deliveredPath), "timeout 10m", "concurrency "+strconv.Itoa(b.c.conns))},
	}
}

// startNATS builds nats-server, starts the three-server cluster and a
// second caddy whose store is on it, serving the same two inboxes as the
// main caddy's Badger store.
func (b *bench) startNATS() error {
	b.logf("building nats-server and starting a cluster of three")
	bin, err := buildNATS(b.dir)
	if err != nil {
		return err
	}
	if b.natsCluster, err = startNATS(bin, b.dir); err != nil {
		return err
	}
	addrs := make([]string, 3)
	for i := range addrs {
		if addrs[i], err = freeAddr(); err != nil {
			return err
		}
	}
	st := &storeTargets{prefix: "nats-", servers: b.natsCluster.readers()}
	if st.noop, err = startApp(0); err != nil {
		return err
	}
	b.nats = st
	if st.gated, err = startApp(0); err != nil {
		return err
	}
	config := caddyfile(addrs[0], natsStore(b.natsCluster.urls(), natsReplicas), b.inboxSites(addrs[1], addrs[2], st.noop, st.gated))
	b.logf("starting the nats caddy")
	if st.server, err = startCaddy(b.bin, b.dir, "nats", config, addrs[0]); err != nil {
		return err
	}
	if err := st.server.waitListening(60*time.Second, addrs[1:]...); err != nil {
		return err
	}
	st.wholeURL, st.busyURL = "http://"+addrs[1]+"/", "http://"+addrs[2]+"/"
	// The store creates its streams once the cluster has elected its
	// JetStream leader, which takes a few seconds.
	for _, url := range []string{st.wholeURL, st.busyURL} {
		if err := b.waitReady(url, 60*time.Second); err != nil {
			return err
		}
	}
	nf := &storeFigures{IngestBusy: new(throughput), Ingest: new(throughput), Delivered: new(throughput)}
	b.report.NATS = nf
	st.busy, st.whole, st.delivered = nf.IngestBusy, nf.Ingest, nf.Delivered
	return nil
}

// stopNATS stops the nats caddy, then the cluster. The apps let go of
// held deliveries first, or the graceful stop would wait on them.
func (b *bench) stopNATS() {
	if st := b.nats; st != nil {
		if st.gated != nil {
			st.gated.release()
		}
		st.server.stop()
		for _, a := range []*app{st.noop, st.gated} {
			if a != nil {
				a.close()
			}
		}
	}
	b.natsCluster.stop()
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

// settle waits until procs are idle before a CPU window starts, and
// counts it when they are not.
func (b *bench) settle(procs ...cpuReader) {
	if waited, ok := settle(procs...); !ok {
		b.unsettled++
		b.logf("servers still busy after %.1fs; measuring anyway", waited.Seconds())
	}
}

// used is the CPU the processes of m used since, 0 (not measured) if it
// could not be read.
func (b *bench) used(m cpuMark) time.Duration {
	d, err := m.used()
	if err != nil {
		b.note("reading CPU time: %v", err)
		return 0
	}
	return d
}

// measureIdle sends single events one after another to the quiet server
// and times each from its 200 to its arrival at the app. Its CPU per event
// is the whole job's, every event alone.
func (b *bench) measureIdle() {
	b.logf("idle: %d sequential events", b.c.idle)
	const warm = 10 // connections and the server's pools
	var answers, deliveries, throughs []time.Duration
	missed := 0
	var mark cpuMark
	for i := range warm + b.c.idle {
		if i == warm {
			b.settle(b.server)
			mark = markCPU(b.server)
		}
		seq := b.open.seq.Add(1)
		arrived := b.noop.watch(seq)
		start := time.Now()
		status := b.open.sendSeq(context.Background(), b.badger.wholeURL, seq)
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
	cpu := b.used(mark)
	b.report.Idle = &idleFigures{Answer: summarize(answers), Delivery: summarize(deliveries), Through: summarize(throughs),
		CPU: perEvent(cpu, int64(len(answers)))}
	if missed > 0 {
		b.note("idle: %d of %d events were not answered 200 or not delivered within 10s", missed, warm+b.c.idle)
	}
	b.logf("idle: answer p50 %.2f ms, accept→delivery p50 %.2f ms p99 %.2f ms, Caddy CPU %.0f µs/event",
		b.report.Idle.Answer.P50, b.report.Idle.Delivery.P50, b.report.Idle.Delivery.P99, b.report.Idle.CPU)
}

// measureThroughput runs the closed-loop targets in rounds, A B C … A B C,
// so a noisy moment of the machine hits one run of each, not one target.
func (b *bench) measureThroughput(withInbox bool) error {
	r := b.report
	r.Respond, r.ProxyNoop, r.ProxySlow = new(throughput), new(throughput), new(throughput)
	type target struct {
		name string
		into *throughput
		take func(run int) runFigures
	}
	plain := func(url string) func(int) runFigures {
		return func(int) runFigures {
			return b.ingestAlone(b.server, nil, url, nil)
		}
	}
	targets := []target{
		{"respond", r.Respond, plain(b.respondURL)},
		{"reverse_proxy no-op", r.ProxyNoop, plain(b.proxyNoopURL)},
		{"reverse_proxy slow", r.ProxySlow, plain(b.proxySlowURL)},
	}
	if withInbox {
		r.DeliveredDefault = new(throughput)
		targets = append(targets,
			target{"hookinbox ingest, app busy", r.IngestBusy, func(run int) runFigures { return b.backlogRun(b.badger, run) }},
			target{"hookinbox delivered, default concurrency", r.DeliveredDefault, b.defaultBacklogRun},
			target{"hookinbox ingest, delivering", r.Ingest, func(run int) runFigures { return b.ingestRun(b.badger, run) }},
		)
	}
	if b.tmpfs != nil {
		r.IngestTmpfs = new(throughput)
		targets = append(targets, target{"hookinbox ingest, tmpfs", r.IngestTmpfs, b.tmpfsRun})
	}
	if st := b.nats; st != nil {
		targets = append(targets,
			target{"nats ingest, app busy", st.busy, func(run int) runFigures { return b.backlogRun(st, run) }},
			target{"nats ingest, delivering", st.whole, func(run int) runFigures { return b.ingestRun(st, run) }},
		)
	}
	for run := range b.c.runs {
		for _, t := range targets {
			b.settle(b.mainProcesses()...)
			f := t.take(run)
			t.into.add(f)
			b.logf("throughput run %d/%d: %-28s %s/s%s, %s", run+1, b.c.runs, t.name, count(f.perS), failedText(f.failed), cpuText(f.cpu, f.serversCPU))
		}
	}
	return nil
}

// mainProcesses are every server process of the main figures. A window
// waits for all of them to be idle, not only for its own: the nats-servers
// may still be at work on the last nats row when the next respond row
// starts, and they share its two cores.
func (b *bench) mainProcesses() []cpuReader {
	procs := []cpuReader{b.server}
	if b.tmpfs != nil {
		procs = append(procs, b.tmpfs)
	}
	if st := b.nats; st != nil {
		procs = append(append(procs, st.server), st.servers...)
	}
	return procs
}

func failedText(n int64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d failed)", n)
}

// ingestAlone is one closed-loop run against url on s, whose CPU over the
// load (warm-up included) per request answered 2xx is the row's: for
// respond and reverse_proxy, a request's whole cost; for an inbox whose app
// holds its deliveries, ingest alone. started, if set, is called once the
// servers are idle, just before the load.
func (b *bench) ingestAlone(s *caddyServer, servers []cpuReader, url string, started func()) runFigures {
	b.settle(append([]cpuReader{s}, servers...)...)
	if started != nil {
		started()
	}
	mark, smark := markCPU(s), markCPU(servers...)
	res := b.sender.closedLoop(closedLoad{url: url, conns: b.c.conns, warmup: b.c.warmup, duration: b.c.duration})
	return runFigures{
		perS: res.perSecond(), failed: res.Failed, events: res.Accepted,
		cpu: perEvent(b.used(mark), res.Accepted), serversCPU: perEvent(b.used(smark), res.Accepted),
	}
}

// ingestRun is one closed-loop run against the inbox that forwards to the
// no-op app, which takes each event as it comes: ingest and delivery share
// the machine, so this is the rate hookinbox sustains, not the rate at which
// it absorbs a burst (backlogRun). Its CPU per event is the whole job's:
// from the load's first request until the last event it got a 200 for has
// reached the app, per event accepted. The deliveries are waited for inside
// that window, which also keeps them from stealing the next target's CPU.
func (b *bench) ingestRun(st *storeTargets, run int) runFigures {
	st.noop.reset()
	b.settle(append([]cpuReader{st.server}, st.servers...)...)
	if run == 0 {
		b.profileOf(st.server, st.prefix+"ingest-delivering.pprof", b.c.warmup+b.c.duration)
	}
	mark, smark := markCPU(st.server), markCPU(st.servers...)
	res := b.sender.closedLoop(closedLoad{url: st.wholeURL, conns: b.c.conns, warmup: b.c.warmup, duration: b.c.duration})
	b.drain(st.noop, int(res.Accepted), st.prefix+"ingest")
	return runFigures{
		perS: res.perSecond(), failed: res.Failed, events: res.Accepted,
		cpu: perEvent(b.used(mark), res.Accepted), serversCPU: perEvent(b.used(smark), res.Accepted),
	}
}

// profileOf takes a CPU profile of s for d, in the background, into the
// -profile directory.
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
// fsync, 200) while everything it accepts piles up in the store: its CPU
// per event is ingest alone. Then the app lets go, and the arrival rate
// over the middle 80% of that backlog (no start-up, no tail) is the
// delivery rate, added to st.delivered with the CPU from the release to
// the last arrival per event delivered.
func (b *bench) backlogRun(st *storeTargets, run int) runFigures {
	st.gated.reset()
	st.gated.hold()
	ingest := b.ingestAlone(st.server, st.servers, st.busyURL, func() {
		switch {
		case run == 0:
			// Done before the load ends: the delivery profile starts then.
			b.profileOf(st.server, st.prefix+"ingest.pprof", b.c.duration)
		case run == b.c.runs-1:
			// Later runs, on a larger store, are often slower: this profile
			// is the one to hold against the first.
			b.profileOf(st.server, st.prefix+"ingest-last.pprof", b.c.duration)
		}
	})
	if run == 0 {
		// The drain's length is not known beforehand; -duration is
		// enough to see where it spends its time.
		b.profileOf(st.server, st.prefix+"delivery.pprof", b.c.duration)
	}
	delivery := b.deliverHeld(st.server, st.servers, st.gated, ingest.events, st.prefix+"backlog")
	st.delivered.add(delivery)
	if st == b.badger && b.report.Backlog == 0 {
		b.report.Backlog = ingest.events
	}
	b.logf("throughput run %d/%d: %-28s %s/s (backlog of %s, %d in flight), %s", run+1, b.c.runs, st.prefix+"delivered",
		count(delivery.perS), count(float64(ingest.events)), b.c.conns, cpuText(delivery.cpu, delivery.serversCPU))
	return ingest
}

// deliverHeld lets a's held deliveries go and waits until the n events
// accepted have arrived: the delivery half, its rate (steadyRate) and its
// CPU per event delivered, from the release to the last arrival.
func (b *bench) deliverHeld(s *caddyServer, servers []cpuReader, a *app, n int64, what string) runFigures {
	mark, smark := markCPU(s), markCPU(servers...)
	a.release()
	b.drain(a, int(n), what)
	delivered := int64(a.count())
	return runFigures{
		perS: steadyRate(a.arrivals()), events: delivered,
		cpu: perEvent(b.used(mark), delivered), serversCPU: perEvent(b.used(smark), delivered),
	}
}

// defaultBacklogRun is the delivery half of backlogRun on the inbox with
// the default concurrency: the rate a user gets without tuning it.
func (b *bench) defaultBacklogRun(run int) runFigures {
	b.gated.reset()
	b.gated.hold()
	res := b.sender.closedLoop(closedLoad{url: b.defaultURL, conns: b.c.conns, duration: time.Hour, limit: int64(b.c.backlog)})
	b.settle(b.server)
	if run == 0 {
		// The default -backlog drains in a few seconds: the profile covers
		// its first two.
		b.profileOf(b.server, "delivery-default.pprof", 2*time.Second)
	}
	f := b.deliverHeld(b.server, nil, b.gated, res.Accepted, "backlog")
	f.failed = res.Failed
	return f
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

// rateDuration is how long the open loop runs at rate: -p99-duration at
// the rate of the answer target, -duration at the others.
func (b *bench) rateDuration(rate float64) time.Duration {
	if rate == b.c.p99Rate {
		return b.c.p99Duration
	}
	return b.c.duration
}

// measureRates runs the open loop at each rate against the inbox whose app
// takes the deliveries.
func (b *bench) measureRates() {
	for _, rate := range b.c.allRates() {
		b.settle(b.mainProcesses()...)
		rf := b.rateRun(b.server, b.badger.wholeURL, b.noop, rate, b.rateDuration(rate))
		b.report.Rates = append(b.report.Rates, rf)
		b.logf("open loop %s req/s for %s: answer p50 %.2f p99 %.2f p99.9 %.2f ms; accept→delivery p50 %.2f p99 %.2f ms%s, %s",
			count(rate), b.rateDuration(rate), rf.Answer.P50, rf.Answer.P99, rf.Answer.P999, rf.Delivery.P50, rf.Delivery.P99,
			failedText(int64(rf.Failed)), cpuText(rf.CPU, 0))
	}
}

// rateRun is one open-loop run against url on s for d. If a is not nil,
// it also times each accepted event from its 200 to its arrival at a, and
// the CPU window runs until the last has arrived (the whole job);
// otherwise it ends with the load (ingest alone).
func (b *bench) rateRun(s *caddyServer, url string, a *app, rate float64, d time.Duration) rateFigures {
	if a != nil {
		a.reset()
	}
	b.settle(s)
	mark := markCPU(s)
	shots, warm := b.open.openLoop(url, rate, b.c.warmup, d)
	rf := rateFigures{Rate: rate, Seconds: d.Seconds()}
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
	// The warm-up's events are in the window too.
	events := int64(len(accepted) + warm)
	if a == nil {
		rf.CPU = perEvent(b.used(mark), events)
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
	rf.CPU = perEvent(b.used(mark), events)
	dl := summarize(deliveries)
	rf.Delivery = &dl
	return rf
}
