package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// stopGrace is how long a stopping server waits for deliveries in flight
// (caddymodule's stopGrace).
const stopGrace = 10 * time.Second

// TestGracefulStopWithDeliveriesInFlight stops the server with SIGTERM while
// slow deliveries are in flight: it exits within the grace period (and a
// margin), deliveries that finish within it are recorded and not repeated,
// and those that do not are delivered after the restart.
func TestGracefulStopWithDeliveriesInFlight(t *testing.T) {
	bin := caddyBinary(t)
	tests := []struct {
		name string
		// delivery is how long the app takes over each event before the stop.
		delivery time.Duration
		// finished: the deliveries in flight end within the grace period.
		finished bool
	}{
		{"deliveries shorter than the grace finish and are not repeated", 2 * time.Second, true},
		{"deliveries longer than the grace are redelivered after restart", time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const concurrency, events = 4, 8
			stand := newRecorder()
			var fast atomic.Bool
			stand.setAnswer(func(r *http.Request, _ string) int {
				if fast.Load() {
					return http.StatusOK
				}
				select {
				case <-time.After(tt.delivery):
					return http.StatusOK
				case <-r.Context().Done():
					return http.StatusGatewayTimeout // cancelled: not a delivery
				}
			})
			app := newAppServer(t, stand)
			dir := t.TempDir()
			addr := freePort(t)
			config := writeConfig(t, dir, fmt.Sprintf(`{
	admin off
	hookinbox {
		storage %s
	}
}
http://%s {
	hookinbox slow {
		forward %s
		timeout 2m
		concurrency %d
		retry 100ms 100ms 100ms
	}
}
`, filepath.Join(dir, "data"), addr, app.url("/slow"), concurrency))
			logs := logFile(t, dir)
			srv := startServer(t, bin, config, addr, logs)
			defer func() { srv.kill() }()

			s := newSender("http://" + addr + "/")
			var acked []string
			for i := range events {
				body := fmt.Sprintf(`{"n":%d}`, i)
				if a, err := s.send(body); err != nil || a.status != http.StatusOK {
					t.Fatalf("send %d: %v %d", i, err, a.status)
				}
				acked = append(acked, body)
			}
			waitFor(t, "deliveries in flight at the app", 10*time.Second, func() bool {
				return stand.inFlightOf("slow") == concurrency
			})

			start := time.Now()
			if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			bound := stopGrace + 5*time.Second
			select {
			case <-srv.exited:
			case <-time.After(bound):
				t.Fatalf("still running %v after SIGTERM", bound)
			}
			took := time.Since(start)
			delivered, _ := stand.counts()
			if tt.finished && delivered != concurrency {
				t.Errorf("%d deliveries finished during the stop, want the %d in flight", delivered, concurrency)
			}
			if !tt.finished && delivered != 0 {
				t.Errorf("%d deliveries finished during the stop, want none", delivered)
			}

			fast.Store(true)
			srv = startServer(t, bin, config, addr, logs)
			waitFor(t, "every event to be delivered after the restart", 30*time.Second, func() bool {
				return len(stand.missing(acked)) == 0
			})
			delivered, duplicates := stand.counts()
			t.Logf("stopped in %v with %d in flight; after restart %d delivered, %d duplicates", took.Round(100*time.Millisecond), concurrency, delivered, duplicates)
			if duplicates != 0 {
				t.Errorf("%d duplicate deliveries: a delivery that finished during the stop was not recorded", duplicates)
			}
		})
	}
}
