package main

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v85/webhook"
)

// These tests are cheap checks of the harness's own parts; no load runs in
// `go test`. BenchmarkSender measures the load generator alone.

func TestSignerBodiesAreSignedAsStripeDoes(t *testing.T) {
	s, err := newSigner(benchSecret, 1024, "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []int64{1, 42, 999_999_999_999} {
		body := s.body(seq)
		if len(body) != 1024 {
			t.Errorf("body %d is %d bytes, want 1024", seq, len(body))
		}
		if err := webhook.ValidatePayload(body, s.header(body, time.Now()), benchSecret); err != nil {
			t.Errorf("stripe-go rejects body %d: %v", seq, err)
		}
	}
	if string(s.body(1)) == string(s.body(2)) {
		t.Error("two events have the same body, so hookinbox would dedupe them")
	}
}

func TestSignerRefusesBodiesTooSmallForAnEvent(t *testing.T) {
	if _, err := newSigner(benchSecret, 64, "test"); err == nil {
		t.Error("a 64-byte body was accepted")
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	ds := make([]time.Duration, 1000)
	for i := range ds {
		ds[i] = time.Duration(1000-i) * time.Millisecond
	}
	l := summarize(ds)
	for _, tc := range []struct {
		name      string
		got, want float64
	}{
		{"p50", l.P50, 500},
		{"p99", l.P99, 990},
		{"p99.9", l.P999, 999},
		{"max", l.Max, 1000},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v ms, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestMedianOfEvenAndOddRuns(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median of 3 runs = %v, want 2", m)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median of 4 runs = %v, want 2.5", m)
	}
}

func TestSteadyRateIgnoresStartAndTail(t *testing.T) {
	start := time.Now()
	var times []time.Time
	// A slow start and a long tail around 1,000 events/s.
	for i := range 1000 {
		times = append(times, start.Add(time.Duration(i)*time.Millisecond))
	}
	times[0] = start.Add(-time.Hour)
	times[999] = start.Add(time.Hour)
	if r := steadyRate(times); r < 990 || r > 1010 {
		t.Errorf("steady rate = %.0f/s, want about 1000/s", r)
	}
}

func TestPlainCaddyfileHasNoHookinboxOption(t *testing.T) {
	cf := plainCaddyfile("127.0.0.1:1", []site{{"127.0.0.1:2", "respond 200"}})
	if strings.Contains(cf, "hookinbox") {
		t.Errorf("plain Caddyfile mentions hookinbox:\n%s", cf)
	}
	if !strings.Contains(cf, "http://127.0.0.1:2 {\n\trespond 200\n}") {
		t.Errorf("site missing:\n%s", cf)
	}
}

func TestCountHasThousandsSeparators(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567"} {
		if got := count(in); got != want {
			t.Errorf("count(%v) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkSender is the load generator against a no-op Go server in the
// same process: the most the harness can send on this machine, which
// bounds every figure it reports.
func BenchmarkSender(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	sig, err := newSigner(benchSecret, 1024, "bench")
	if err != nil {
		b.Fatal(err)
	}
	s := &sender{client: newClient(64), scheme: sig, seq: new(atomic.Int64)}
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, status := s.send(context.Background(), srv.URL); status != 200 {
				b.Fatalf("status %d", status)
			}
		}
	})
}

// The memory split reads the kernel's smaps format: only file mappings
// count, by what the file is.
func TestParseSmapsSplitsFileMappings(t *testing.T) {
	smaps := `00400000-02000000 r-xp 00000000 fd:01 123  /usr/local/bin/caddy
Size:              28672 kB
Rss:               45056 kB
7f0000000000-7f0000800000 rw-s 00000000 fd:01 456  /tmp/store/000012.sst
Rss:                2048 kB
7f0000800000-7f0001000000 rw-s 00000000 fd:01 457  /tmp/store/000013.sst
Rss:                1024 kB
7f0001000000-7f0002000000 rw-s 00000000 fd:01 458  /tmp/store/000001.vlog
Rss:                 512 kB
7f0002000000-7f0003000000 rw-p 00000000 00:00 0
Rss:              100000 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0  [stack]
Rss:                 128 kB
`
	got, err := parseSmaps(smaps, "/usr/local/bin/caddy")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"binary": 45056 << 10, "tables": 3072 << 10, "value log": 512 << 10}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
}

func TestParseStatCPUSkipsTheCommandName(t *testing.T) {
	stat := "4242 (caddy run (x)) S 1 4242 4242 0 -1 4194560 9047 0 0 0 250 125 0 0 20 0 12 0 100 0 0"
	got, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3750 * time.Millisecond; got != want {
		t.Errorf("cpu = %v, want %v (250 + 125 ticks)", got, want)
	}
	if _, err := parseStatCPU("garbage"); err == nil {
		t.Error("garbage parsed")
	}
}

func TestFindTmpfsReadsTheMountTable(t *testing.T) {
	mounts := "/dev/vda / ext4 rw,relatime 0 0\n" +
		"tmpfs /run tmpfs rw,nosuid 0 0\n" +
		"shm /dev/shm tmpfs rw,nosuid,nodev 0 0\n"
	if got := findTmpfs(bufio.NewScanner(strings.NewReader(mounts)), "/dev/shm"); got != "/dev/shm" {
		t.Errorf("findTmpfs = %q, want /dev/shm", got)
	}
	onDisk := "/dev/vda / ext4 rw 0 0\n/dev/vdb /dev/shm ext4 rw 0 0\n"
	if got := findTmpfs(bufio.NewScanner(strings.NewReader(onDisk)), "/dev/shm"); got != "" {
		t.Errorf("findTmpfs = %q for a /dev/shm on ext4, want none", got)
	}
}
