package throttle

import (
	"testing"
	"time"
)

func TestEveryLetsOneLineThroughPerPeriod(t *testing.T) {
	e := New(10 * time.Second)
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at             time.Duration
		ok             bool
		wantSuppressed int64
	}{
		{0, true, 0},
		{time.Second, false, 0},
		{9 * time.Second, false, 0},
		{10 * time.Second, true, 2},
		{15 * time.Second, false, 0},
		{40 * time.Second, true, 1},
		{41 * time.Second, false, 0},
	}
	for _, s := range steps {
		ok, n := e.Allow(t0.Add(s.at))
		if ok != s.ok || n != s.wantSuppressed {
			t.Errorf("at +%s: Allow = %v, %d; want %v, %d", s.at, ok, n, s.ok, s.wantSuppressed)
		}
	}
}
