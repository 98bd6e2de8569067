package deliver

import (
	"net/http"
	"testing"
	"time"

	"github.com/hookinbox/hookinbox/internal/store"
)

func TestSchedule(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	retry := []time.Duration{time.Minute, time.Hour}
	tests := []struct {
		name       string
		attempts   int // before this one
		outcome    string
		retryAfter time.Duration
		want       store.Next
	}{
		{"delivered", 0, store.OutcomeOK, 0, store.Next{Delivered: true}},
		{"first failure waits Retry[0]", 0, store.OutcomeServerError, 0, store.Next{RetryAt: now.Add(time.Minute)}},
		{"second failure waits Retry[1]", 1, store.OutcomeConnect, 0, store.Next{RetryAt: now.Add(time.Hour)}},
		{"past the schedule is dead", 2, store.OutcomeTimeout, 0, store.Next{Dead: true}},
		{"dead even if Retry-After asks", 2, store.OutcomeServerError, time.Hour, store.Next{Dead: true}},
		{"longer Retry-After wins", 0, store.OutcomeServerError, 2 * time.Minute, store.Next{RetryAt: now.Add(2 * time.Minute)}},
		{"shorter Retry-After loses", 1, store.OutcomeClientError, 2 * time.Minute, store.Next{RetryAt: now.Add(time.Hour)}},
		{"Retry-After capped at 24h", 0, store.OutcomeClientError, 1000 * time.Hour, store.Next{RetryAt: now.Add(24 * time.Hour)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := schedule(&settings{Inbox: Inbox{Retry: retry}}, tt.attempts, store.Attempt{Outcome: tt.outcome}, tt.retryAfter, now)
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"120", 2 * time.Minute},
		{" 7 ", 7 * time.Second},
		{"86401", 24 * time.Hour},
		{"18446744073709551615", 24 * time.Hour},
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"Tuesday, 03-Nov-26 12:01:00 GMT", time.Minute}, // RFC 850, still allowed
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
