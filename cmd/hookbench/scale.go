package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// A server's memory is read at rest: once, over settleStep, its RSS has
// moved by less than settleChange and it used less than settleCPU of a core
// (Badger compacts for a while after a burst, its table builders holding
// tens of MB, and the Go runtime returns freed memory gradually); or after
// settleMax. The peak (VmHWM) is reported beside it, so compaction's memory
// is not hidden.
const (
	// restAfter: when the scale target's memory is read (measureScale).
	restAfter    = 150 * time.Second
	settleStep   = 5 * time.Second
	settleMax    = 2 * time.Minute
	settleChange = 0.02
	settleCPU    = 0.05
)

// memoryAtRest waits for s to come to rest and reads its memory.
func (b *bench) memoryAtRest(s *caddyServer) (memStatus, error) {
	start := time.Now()
	time.Sleep(settleStep)
	last, err := s.memory()
	lastCPU, cerr := s.cpuTime()
	err = errors.Join(err, cerr)
	for err == nil && time.Since(start) < settleMax {
		time.Sleep(settleStep)
		var m memStatus
		if m, err = s.memory(); err != nil {
			break
		}
		var cpu time.Duration
		if cpu, err = s.cpuTime(); err != nil {
			break
		}
		change := float64(m.RSS-last.RSS) / float64(max(last.RSS, 1))
		busy := (cpu - lastCPU).Seconds() / settleStep.Seconds()
		last, lastCPU = m, cpu
		if change < settleChange && change > -settleChange && busy < settleCPU {
			break
		}
	}
	if err != nil {
		return last, fmt.Errorf("reading caddy's memory: %v", err)
	}
	b.logf("scale: memory read %.0fs after the load", time.Since(start).Seconds())
	return last, nil
}

// scaleServer is one caddy with one inbox for the scale test.
type scaleServer struct {
	name, config, admin, addr string
	server                    *caddyServer
	firstAnswer               time.Duration
}

func (s *scaleServer) url() string { return "http://" + s.addr + "/" }

// measureScale fills a store with -scale-events pending events and reads
// the memory that leaves, restarts that server on its data to time its
// first 200, then compares ingest on it with ingest on an empty store and
// reads its memory again, serving with the backlog.
//
// Both servers forward to an app that answers every request 503, with one
// retry a day away: the events stay pending, as they do while a user's app
// is down, and both servers do the same work per request. The app holds
// its port: a free port merely closed could be taken by another process,
// whose 2xx would close the breaker at its next probe and drain the
// backlog while the memory is read "at rest".
func (b *bench) measureScale() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	downApp := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})}
	go downApp.Serve(l)
	defer downApp.Close()
	down := l.Addr().String()
	servers := make([]*scaleServer, 2)
	for i, name := range []string{"empty", "full"} {
		config, admin, addr, err := oneInbox(b.sender.scheme.verify(), filepath.Join(b.dir, "storage-"+name), "scale", "http://"+down+deliveredPath, "retry 24h")
		if err != nil {
			return err
		}
		s := &scaleServer{name: name, config: config, admin: admin, addr: addr}
		if err := b.startScale(s); err != nil {
			return err
		}
		defer func() { s.server.stop() }()
		servers[i] = s
	}
	empty, full := servers[0], servers[1]

	// The empty store's start is the reference for the restart below:
	// what Caddy and an empty Badger take anyway.
	sf := &scaleFigures{Empty: new(throughput), Full: new(throughput), FirstAnswerEmpty: empty.firstAnswer.Seconds()}
	b.report.Scale = sf
	b.logf("scale: filling the store with %s events (%d connections)", count(float64(b.c.scaleEvents)), b.c.fillConns)
	ticks := 0
	fill := b.sender.with(newClient(b.c.fillConns)).closedLoop(closedLoad{
		url: full.url(), conns: b.c.fillConns, duration: 24 * time.Hour, limit: b.c.scaleEvents,
		progress: func(accepted int64) {
			if ticks++; ticks%10 == 0 {
				b.logf("scale: %s events stored", count(float64(accepted)))
			}
		},
	})
	sf.Pending = fill.Accepted
	sf.FillPerS = float64(fill.Accepted) / fill.Elapsed.Seconds()
	if fill.Failed > 0 {
		b.note("scale: %d of the %d fill requests were not answered 2xx", fill.Failed, b.c.scaleEvents)
	}
	b.logf("scale: %s events pending, filled at %s/s", count(float64(sf.Pending)), count(sf.FillPerS))

	// The fill's own cost: what a burst of that size leaves behind.
	if sf.MemoryFilled, err = b.memoryAtRest(full.server); err != nil {
		return err
	}
	b.logf("scale: RSS right after the fill: %s", memText(sf.MemoryFilled))
	b.heapProfile(full.server, "heap-fill.pprof")

	b.logf("scale: restarting the full server on its data")
	full.server.stop()
	if err := b.startScale(full); err != nil {
		return err
	}
	sf.FirstAnswer = full.firstAnswer.Seconds()
	b.logf("scale: first 200 %.2fs after start (empty store: %.2fs)", sf.FirstAnswer, sf.FirstAnswerEmpty)

	for run := range b.c.runs {
		for _, s := range servers {
			f := b.ingestAlone(s.server, nil, s.url(), nil)
			into := sf.Empty
			if s == full {
				into = sf.Full
			}
			into.add(f)
			b.logf("scale run %d/%d: ingest, %s store: %s/s%s, %s", run+1, b.c.runs, s.name, count(f.perS), failedText(f.failed), cpuText(f.cpu, 0))
		}
	}
	for _, rate := range b.c.rates {
		e := b.rateRun(empty.server, empty.url(), nil, rate, b.c.duration)
		f := b.rateRun(full.server, full.url(), nil, rate, b.c.duration)
		sf.RatesEmpty, sf.RatesFull = append(sf.RatesEmpty, e), append(sf.RatesFull, f)
		b.logf("scale: open loop %s req/s: answer p99 %.2f ms empty, %.2f ms full", count(rate), e.Answer.P99, f.Answer.P99)
	}
	b.note("scale: the empty store took the ingest runs' events too (all pending); small beside %s", count(float64(sf.Pending)))

	// The figure is the server's size with the backlog, at rest: not the
	// garbage of the last load, which it holds for a while. Badger keeps
	// the buffers of up to 8 table builders after a compaction (about 100
	// MB after a heavy one) and frees one each 2 s without compactions;
	// then the Go runtime must collect them and return them, which the
	// store asks for 20 s after its last write and again later
	// (internal/store/memory.go). So memory is read twice: soon after the
	// load, and restAfter after it. The peak (VmHWM) keeps the worst
	// moment since the restart.
	loadEnd := time.Now()
	if sf.MemorySoon, err = b.memoryAtRest(full.server); err != nil {
		return err
	}
	b.logf("scale: RSS serving with the backlog, soon after the load: %s", memText(sf.MemorySoon))
	time.Sleep(time.Until(loadEnd.Add(restAfter)))
	if sf.Memory, err = full.server.memory(); err != nil {
		return fmt.Errorf("reading caddy's memory: %v", err)
	}
	b.logf("scale: RSS serving with the backlog, %s after the load: %s", restAfter, memText(sf.Memory))
	b.heapProfile(full.server, "heap-scale.pprof")
	return nil
}

// startScale starts s and sends events until one is answered 200, timing
// that from the process start: the time a restarted server leaves senders
// without an answer.
func (b *bench) startScale(s *scaleServer) error {
	var err error
	if s.server, err = startCaddy(b.bin, b.dir, "scale-"+s.name, s.config, s.admin); err != nil {
		return err
	}
	deadline := s.server.started.Add(5 * time.Minute)
	for {
		select {
		case <-s.server.exited:
			return fmt.Errorf("scale %s: caddy exited (see %s)", s.name, filepath.Join(b.dir, "scale-"+s.name+".log"))
		default:
		}
		if _, status := b.open.send(context.Background(), s.url()); status == 200 {
			s.firstAnswer = time.Since(s.server.started)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("scale %s: no 200 within 5 minutes of start", s.name)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// heapProfile writes s's heap profile into the -profile directory, if set.
func (b *bench) heapProfile(s *caddyServer, name string) {
	if b.c.profile == "" {
		return
	}
	path := filepath.Join(b.c.profile, name)
	err := os.MkdirAll(b.c.profile, 0o755)
	if err == nil {
		err = s.pprof("heap", path)
	}
	if err != nil {
		b.note("heap profile: %v", err)
		return
	}
	b.logf("heap profile written to %s", path)
}
