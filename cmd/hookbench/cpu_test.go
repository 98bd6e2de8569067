package main

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/nats-io/nats-server/v2/server"

	_ "github.com/hookinbox/hookinbox/caddymodule"
	"github.com/hookinbox/hookinbox/internal/verify"
)

func TestHottokBodiesPassHookinboxsHotmartCheck(t *testing.T) {
	h, err := newHottok(benchHottok, 1024, "test")
	if err != nil {
		t.Fatal(err)
	}
	v, err := verify.New(verify.Config{Scheme: "hotmart", Secrets: []string{benchHottok}})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, seq := range []int64{1, 42, 999_999_999_999} {
		body := h.body(seq)
		if len(body) != 1024 {
			t.Errorf("body %d is %d bytes, want 1024", seq, len(body))
		}
		hd := http.Header{}
		h.sign(hd, body, time.Now())
		res, err := v.Verify(&verify.Request{Method: http.MethodPost, Header: hd, Body: body, Now: time.Now()})
		if err != nil {
			t.Fatalf("body %d rejected: %v", seq, err)
		}
		if res.EventID == "" || ids[res.EventID] {
			t.Errorf("body %d has event id %q: empty or repeated, so hookinbox would not dedupe per event", seq, res.EventID)
		}
		ids[res.EventID] = true
	}
	wrong := h.body(7)
	hd := http.Header{}
	(&hottok{fixedBody: h.fixedBody, token: "not-the-hottok"}).sign(hd, wrong, time.Now())
	if _, err := v.Verify(&verify.Request{Method: http.MethodPost, Header: hd, Body: wrong, Now: time.Now()}); err == nil {
		t.Error("a wrong hottok passed: the benchmark would not measure the check")
	}
}

func TestNewSchemeNamesBothSenders(t *testing.T) {
	for name, directive := range map[string]string{
		"hotmart": "verify hotmart " + benchHottok,
		"stripe":  "verify stripe " + benchSecret,
	} {
		s, err := newScheme(name, 1024, "x")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s.verify() != directive {
			t.Errorf("%s: verify directive %q, want %q", name, s.verify(), directive)
		}
	}
	if _, err := newScheme("github", 1024, "x"); err == nil {
		t.Error("an unknown sender was accepted")
	}
}

func TestPerEventIsMicrosecondsPerEvent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cpu    time.Duration
		events int64
		want   float64
	}{
		{"2.5 s over 10,000 events", 2500 * time.Millisecond, 10_000, 250},
		{"one tick over 400 events", 10 * time.Millisecond, 400, 25},
		{"no events is not measured", time.Second, 0, 0},
		{"a negative CPU (a restarted process) is not measured", -time.Second, 10, 0},
	} {
		if got := perEvent(tc.cpu, tc.events); got != tc.want {
			t.Errorf("%s: perEvent = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// fakeCPU is a process whose CPU time the test sets.
type fakeCPU struct{ at []time.Duration }

func (f *fakeCPU) cpuTime() (time.Duration, error) {
	t := f.at[0]
	if len(f.at) > 1 {
		f.at = f.at[1:]
	}
	return t, nil
}

func TestCPUMarkSumsEveryProcess(t *testing.T) {
	a := &fakeCPU{at: []time.Duration{time.Second, 3 * time.Second}}
	b := &fakeCPU{at: []time.Duration{10 * time.Second, 10500 * time.Millisecond}}
	got, err := markCPU(a, b).used()
	if err != nil {
		t.Fatal(err)
	}
	if want := 2500 * time.Millisecond; got != want {
		t.Errorf("used = %v, want %v", got, want)
	}
	none, err := markCPU().used()
	if err != nil || none != 0 {
		t.Errorf("no processes: used = %v, %v; want 0", none, err)
	}
}

func TestIdleAllowsOneTickPerProcess(t *testing.T) {
	for _, tc := range []struct {
		cpu  time.Duration
		n    int
		want bool
	}{
		{0, 1, true},
		{10 * time.Millisecond, 1, true},
		{20 * time.Millisecond, 1, false},
		{40 * time.Millisecond, 4, true},
		{80 * time.Millisecond, 4, false},
	} {
		if got := idle(tc.cpu, tc.n, settleWindow); got != tc.want {
			t.Errorf("idle(%v, %d processes) = %v, want %v", tc.cpu, tc.n, got, tc.want)
		}
	}
}

func TestThroughputCPUIsTheMedianOfMeasuredRuns(t *testing.T) {
	var tp throughput
	for _, r := range []runFigures{
		{perS: 1000, cpu: 90, serversCPU: 300},
		{perS: 3000, cpu: 0}, // not measured: no CPU run
		{perS: 2000, cpu: 70, serversCPU: 100},
		{perS: 1500, cpu: 80, serversCPU: 200},
	} {
		tp.add(r)
	}
	if tp.Median != 1750 || tp.CPU != 80 || tp.ServersCPU != 200 {
		t.Errorf("median %v req/s, CPU %v µs, servers %v µs; want 1750, 80, 200", tp.Median, tp.CPU, tp.ServersCPU)
	}
	if len(tp.CPURuns) != 3 {
		t.Errorf("CPU runs %v: the unmeasured run counted", tp.CPURuns)
	}
}

func resultOf(t *testing.T, r *report, prefix string) check {
	t.Helper()
	for _, c := range r.Checks {
		if strings.HasPrefix(c.Name, prefix) {
			return c
		}
	}
	t.Fatalf("no check %q in %v", prefix, r.Checks)
	return check{}
}

func TestJudgeTheCPUAndAnswerTargets(t *testing.T) {
	r := &report{
		Conditions: conditions{P99Rate: 2000, P99Seconds: 30},
		Respond:    &throughput{Median: 20000, CPU: 23},
		ProxyNoop:  &throughput{Median: 7000, CPU: 88},
		IngestBusy: &throughput{Median: 8000, CPU: 79},
		Ingest:     &throughput{Median: 6000, CPU: 132},
		Rates: []rateFigures{
			{Rate: 500, Answer: latencies{N: 100, P99: 80}},
			{Rate: 2000, Answer: latencies{N: 100, P99: 38}},
		},
		NATS: &storeFigures{IngestBusy: &throughput{Median: 1900}},
	}
	r.judge()
	for _, tc := range []struct {
		check, result string
		value         float64
	}{
		{"CPU: whole job", "PASS", 1.5},
		{"CPU: ingest alone", "MISS", 79.0 / 23},
		{"answer p99 at 2,000 req/s for 30s", "PASS", 38},
		{"nats ingest / badger ingest", "MISS", 1900.0 / 8000},
		{"RSS with", "not run", 0},
	} {
		c := resultOf(t, r, tc.check)
		if c.Result != tc.result || c.Value != tc.value {
			t.Errorf("%s: %v %s, want %v %s", c.Name, c.Value, c.Result, tc.value, tc.result)
		}
	}
}

func TestJudgeMemoryAtEveryReading(t *testing.T) {
	r := &report{Scale: &scaleFigures{
		Pending:    1_000_000,
		MemorySoon: memStatus{RSS: 450e6},
		Memory:     memStatus{RSS: 250e6},
	}}
	r.judge()
	if c := resultOf(t, r, "RSS with"); c.Result != "MISS" || c.Value != 450 {
		t.Errorf("RSS check %v %s: soon after the load was 450 MB, want MISS at 450", c.Value, c.Result)
	}
}

func TestAllRatesHasTheP99RateOnce(t *testing.T) {
	c := config{rates: rateList{1000, 500}, p99Rate: 2000}
	if got := c.allRates(); !slices.Equal(got, []float64{500, 1000, 2000}) {
		t.Errorf("allRates = %v", got)
	}
	c.p99Rate = 500
	if got := c.allRates(); !slices.Equal(got, []float64{500, 1000}) {
		t.Errorf("allRates = %v", got)
	}
}

func TestNATSConfigIsWhatNatsServerReads(t *testing.T) {
	dir := t.TempDir()
	nodes := []natsNode{
		{name: "n1", client: "127.0.0.1:14222", route: "127.0.0.1:16222", storeDir: filepath.Join(dir, "n1")},
		{name: "n2", client: "127.0.0.1:14223", route: "127.0.0.1:16223", storeDir: filepath.Join(dir, "n2")},
		{name: "n3", client: "127.0.0.1:14224", route: "127.0.0.1:16224", storeDir: filepath.Join(dir, "n3")},
	}
	path := filepath.Join(dir, "n2.conf")
	if err := os.WriteFile(path, []byte(natsConfig(nodes[1], nodes)), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server rejects the config: %v\n%s", err, natsConfig(nodes[1], nodes))
	}
	var routes []string
	for _, u := range opts.Routes {
		routes = append(routes, u.Host)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"server name", opts.ServerName, "n2"},
		{"client port", opts.Port, 14223},
		{"JetStream", opts.JetStream, true},
		{"sync before every ack", opts.SyncAlways, true},
		{"store dir", opts.StoreDir, nodes[1].storeDir},
		{"cluster port", opts.Cluster.Port, 16223},
		{"routes to the others only", strings.Join(routes, " "), "127.0.0.1:16222 127.0.0.1:16224"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

// The generated Caddyfiles must be what Caddy and hookinbox parse, with
// the nats store as the README writes it.
func TestCaddyfilesAdapt(t *testing.T) {
	verifyLine := "verify hotmart " + benchHottok
	sites := []site{{"127.0.0.1:2", inboxDirectives(verifyLine, "bench", "http://127.0.0.1:3/delivered", "timeout 10m")}}
	for name, cf := range map[string]string{
		"badger": caddyfile("127.0.0.1:1", badgerStore(t.TempDir()), sites),
		"nats":   caddyfile("127.0.0.1:1", natsStore([]string{"nats://127.0.0.1:4222", "nats://127.0.0.1:4223"}, 3), sites),
		"plain":  plainCaddyfile("127.0.0.1:1", []site{{"127.0.0.1:2", "respond 200"}}),
	} {
		out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil)
		if err != nil {
			t.Errorf("%s: %v\n%s", name, err, cf)
			continue
		}
		if len(warnings) > 0 {
			t.Errorf("%s: warnings %v\n%s", name, warnings, cf)
		}
		if name == "nats" {
			for _, want := range []string{`"replicas":3`, `"nats://127.0.0.1:4223"`} {
				if !strings.Contains(string(out), want) {
					t.Errorf("nats config lacks %s: %s", want, out)
				}
			}
		}
	}
}

func TestExitHooksRunLastFirstAndForgetStops(t *testing.T) {
	var ran []string
	onExit(func() { ran = append(ran, "directory") })
	forget := onExit(func() { ran = append(ran, "stopped already") })
	onExit(func() { ran = append(ran, "processes") })
	forget()
	runExitHooks()
	if want := []string{"processes", "directory"}; !slices.Equal(ran, want) {
		t.Errorf("ran %v, want %v", ran, want)
	}
	runExitHooks()
	if len(ran) != 2 {
		t.Errorf("hooks ran twice: %v", ran)
	}
}
