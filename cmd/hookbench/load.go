package main

import (
	"bytes"
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// seqHeader carries an event's number to the stand-in app, which is how the
// harness matches a delivery to the answer it got for the same event.
// hookinbox forwards the sender's headers, so it needs no cooperation.
const seqHeader = "X-Bench-Seq"

// sender sends the run's events (scheme), to every target alike.
type sender struct {
	client *http.Client
	scheme scheme
	// seq numbers events across the whole run: ids never repeat, so no
	// request is answered from hookinbox's dedupe index.
	seq *atomic.Int64
}

// newClient returns a keep-alive HTTP/1.1 client. maxConns bounds the
// connections to one host (0: no bound, for the open loop, which must open
// a new connection rather than wait for a busy one).
func newClient(maxConns int) *http.Client {
	idle := maxConns
	if idle == 0 {
		idle = 1024
	}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        0,
			MaxIdleConnsPerHost: idle,
			MaxConnsPerHost:     maxConns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

func (s *sender) with(client *http.Client) *sender {
	return &sender{client: client, scheme: s.scheme, seq: s.seq}
}

// send sends one event to url and reads the whole answer. status is 0 when
// no answer came (connection refused, reset, timeout).
func (s *sender) send(ctx context.Context, url string) (seq int64, status int) {
	seq = s.seq.Add(1)
	return seq, s.sendSeq(ctx, url, seq)
}

// sendSeq sends event seq, which the caller took from s.seq.
func (s *sender) sendSeq(ctx context.Context, url string, seq int64) (status int) {
	body := s.scheme.body(seq)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0
	}
	s.scheme.sign(req.Header, body, time.Now())
	req.Header.Set(seqHeader, strconv.FormatInt(seq, 10))
	resp, err := s.client.Do(req)
	if err != nil {
		return 0
	}
	// Reading to EOF returns the connection to the pool.
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func ok(status int) bool { return status >= 200 && status < 300 }

// closedLoad is a closed-loop load: conns workers, each sending its next
// request as soon as the last is answered. It measures the most a server
// can answer, not latency (a slow answer slows the sender down with it).
type closedLoad struct {
	url      string
	conns    int
	warmup   time.Duration // sent but not counted: connections, caches, JIT-like warm-up of the server's pools
	duration time.Duration // counted
	// limit stops the load after this many requests (0: none); with it,
	// duration is only an upper bound.
	limit int64
	// progress, if set, is called about every second with the 2xx count.
	progress func(accepted int64)
}

type closedResult struct {
	OK      int64         // 2xx answers inside the counted window
	Failed  int64         // other answers and errors inside the window
	Elapsed time.Duration // the counted window
	// Accepted counts every 2xx, warm-up included: what hookinbox stored and
	// so what the app must receive before the next measurement starts.
	Accepted int64
}

func (r closedResult) perSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

func (s *sender) closedLoop(l closedLoad) closedResult {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	from, until := start.Add(l.warmup), start.Add(l.warmup+l.duration)
	var okN, failedN, accepted, sent atomic.Int64
	var lastDone atomic.Int64 // nanoseconds since start of the last counted answer
	var wg sync.WaitGroup
	for range l.conns {
		wg.Go(func() {
			for {
				if l.limit > 0 && sent.Add(1) > l.limit {
					return
				}
				if time.Now().After(until) {
					return
				}
				_, status := s.send(ctx, l.url)
				now := time.Now()
				if ok(status) {
					accepted.Add(1)
				}
				if now.Before(from) || now.After(until) {
					continue
				}
				lastDone.Store(int64(now.Sub(start)))
				if ok(status) {
					okN.Add(1)
				} else {
					failedN.Add(1)
				}
			}
		})
	}
	if l.progress != nil {
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		tick := time.NewTicker(time.Second)
	wait:
		for {
			select {
			case <-done:
				break wait
			case <-tick.C:
				l.progress(accepted.Load())
			}
		}
		tick.Stop()
	}
	wg.Wait()
	elapsed := l.duration
	if l.limit > 0 {
		// A limited load ends when the last answer comes, not at the clock.
		elapsed = time.Duration(lastDone.Load()) - l.warmup
	}
	return closedResult{OK: okN.Load(), Failed: failedN.Load(), Elapsed: elapsed, Accepted: accepted.Load()}
}

// shot is one request of an open-loop load.
type shot struct {
	seq       int64
	scheduled time.Time // when the schedule said to send it
	answered  time.Time
	status    int
}

// latency is measured from the scheduled time, not from the moment the
// request left: when the server stalls, the requests that should have been
// sent meanwhile count the stall too (no coordinated omission).
func (s shot) latency() time.Duration { return s.answered.Sub(s.scheduled) }

// openLoop sends rate requests per second at fixed intervals for
// warmup+duration, whatever the answers, each from its own goroutine so a
// slow answer never delays the schedule. It returns the shots scheduled
// after the warm-up, once all of them are answered, and how many of the
// warm-up's were answered 2xx.
func (s *sender) openLoop(url string, rate float64, warmup, duration time.Duration) (counted []shot, warmAccepted int) {
	interval := time.Duration(float64(time.Second) / rate)
	total := int((warmup + duration) / interval)
	skip := int(warmup / interval)
	shots := make([]shot, total)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range total {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		// Behind schedule (the sleep overslept, or the machine stalled):
		// send at once with the scheduled time kept, so the delay counts.
		wg.Go(func() {
			seq, status := s.send(context.Background(), url)
			shots[i] = shot{seq: seq, scheduled: at, answered: time.Now(), status: status}
		})
	}
	wg.Wait()
	for _, sh := range shots[:skip] {
		if ok(sh.status) {
			warmAccepted++
		}
	}
	return shots[skip:], warmAccepted
}

// latencies holds the percentiles of a set of durations.
type latencies struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
}

// summarize sorts ds (every sample is kept, so the percentiles are exact,
// not bucketed as in an HDR histogram) and reads the percentiles off it.
func summarize(ds []time.Duration) latencies {
	if len(ds) == 0 {
		return latencies{}
	}
	slices.Sort(ds)
	return latencies{
		N:    len(ds),
		P50:  millis(percentile(ds, 0.50)),
		P99:  millis(percentile(ds, 0.99)),
		P999: millis(percentile(ds, 0.999)),
		Max:  millis(ds[len(ds)-1]),
	}
}

// percentile is the nearest-rank percentile of sorted: the smallest sample
// that at least q of all samples do not exceed.
func percentile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// median of xs; xs is reordered.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}
