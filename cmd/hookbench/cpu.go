package main

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Every row reports the CPU that the server's own processes spent on it, per
// request or event: on two shared cores a throughput depends as much on the
// load generator's share of the CPU as on the server, and this does not.
// It is read from /proc/<pid>/stat (user + system, all threads) at the start
// and the end of a window that each row defines (measure.go).

// cpuReader is a process whose CPU time the harness reads.
type cpuReader interface {
	cpuTime() (time.Duration, error)
}

// processCPU is the CPU time process pid has used, all its threads.
func processCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(data))
}

// cpuMark is the CPU time of some processes at one moment.
type cpuMark struct {
	procs []cpuReader
	at    []time.Duration
	err   error
}

func markCPU(procs ...cpuReader) cpuMark {
	m := cpuMark{procs: procs, at: make([]time.Duration, len(procs))}
	for i, p := range procs {
		var err error
		m.at[i], err = p.cpuTime()
		m.err = errors.Join(m.err, err)
	}
	return m
}

// used is the CPU time the processes have used since m, summed.
func (m cpuMark) used() (time.Duration, error) {
	if m.err != nil {
		return 0, m.err
	}
	now := markCPU(m.procs...)
	if now.err != nil {
		return 0, now.err
	}
	return sumSince(m.at, now.at), nil
}

func sumSince(start, end []time.Duration) time.Duration {
	var d time.Duration
	for i := range start {
		d += end[i] - start[i]
	}
	return d
}

// perEvent is cpu per event in microseconds; 0 (not measured) without
// events.
func perEvent(cpu time.Duration, events int64) float64 {
	if events <= 0 || cpu < 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(events)
}

// Before a window starts, its processes must be idle: the main Caddy serves
// every target, and work left from the one before (Badger compacting after
// a backlog, the GC) would be charged to the next. A process is idle once it
// used at most settleBusy of a core over settleWindow, which at the kernel's
// 10 ms clock tick means at most one tick.
const (
	settleWindow = 300 * time.Millisecond
	settleBusy   = 0.05
	settleLimit  = 5 * time.Second
)

// settle waits until procs are idle, or settleLimit. It reports how long it
// waited and whether they were idle by then.
func settle(procs ...cpuReader) (time.Duration, bool) {
	start := time.Now()
	last := markCPU(procs...)
	for time.Since(start) < settleLimit {
		time.Sleep(settleWindow)
		now := markCPU(procs...)
		if last.err != nil || now.err != nil {
			return time.Since(start), false
		}
		if idle(sumSince(last.at, now.at), len(procs), settleWindow) {
			return time.Since(start), true
		}
		last = now
	}
	return time.Since(start), false
}

// idle reports whether n processes that used cpu over window used at most
// settleBusy of a core each.
func idle(cpu time.Duration, n int, window time.Duration) bool {
	return cpu.Seconds() <= settleBusy*window.Seconds()*float64(n)
}
