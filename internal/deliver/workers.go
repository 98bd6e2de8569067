package deliver

import "time"

// workerIdle: how long a worker waits for its next attempt before it ends.
const workerIdle = 10 * time.Second

// workers runs attempts on goroutines that outlive one attempt. A new
// goroutine starts with a small stack, and an attempt (the store's read,
// the HTTP client, the record) grows it several times, copying it each
// time: at thousands of attempts a second that copying took about 8% of the
// delivery's CPU. A worker keeps its grown stack for the next attempt.
type workers struct {
	// work is unbuffered: a send succeeds only when a worker is waiting.
	work chan func()
	// quit ends the waiting workers (the service stopped).
	quit chan struct{}
}

func newWorkers() *workers {
	return &workers{work: make(chan func()), quit: make(chan struct{})}
}

// run runs f on a waiting worker, or on a new one.
func (w *workers) run(f func()) {
	select {
	case w.work <- f:
	default:
		go w.loop(f)
	}
}

func (w *workers) loop(f func()) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		idle.Reset(workerIdle)
		select {
		case f = <-w.work:
		case <-idle.C:
			return
		case <-w.quit:
			return
		}
	}
}

// stop ends the workers once they are done with their attempts.
func (w *workers) stop() { close(w.quit) }
