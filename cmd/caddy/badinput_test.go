package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rawExchange writes a request as raw bytes (the head, then the body in
// pieces of step bytes every pause) and reads the answer's status, or 0
// when the server closed the connection without one.
func rawExchange(t *testing.T, addr string, head string, body []byte, step int, pause time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	// The server may answer and close before it has read everything: a
	// failed write is part of what is tested, the answer decides.
	go func() {
		if _, err := c.Write([]byte(head)); err != nil {
			return
		}
		if step <= 0 {
			step = len(body)
		}
		for len(body) > 0 {
			n := min(step, len(body))
			if _, err := c.Write(body[:n]); err != nil {
				return
			}
			body = body[n:]
			if len(body) > 0 {
				time.Sleep(pause)
			}
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, time.Since(start)
	}
	resp.Body.Close()
	return resp.StatusCode, time.Since(start)
}

// TestBadInputIsRefusedAndNotStored sends malformed and hostile requests
// to an inbox: each gets a clear 4xx (or 200 for valid but odd input), the
// server does not fall over, slow senders are cut off in bounded time, and
// the store holds exactly the accepted events, delivered byte for byte.
func TestBadInputIsRefusedAndNotStored(t *testing.T) {
	bin := caddyBinary(t)
	const maxBody = 1024
	stand := newRecorder()
	app := newAppServer(t, stand)
	dir := t.TempDir()
	addr, adminAddr := freePort(t), freePort(t)
	config := writeConfig(t, dir, fmt.Sprintf(`{
	admin %s
	servers {
		timeouts {
			read_header 2s
			read_body 1s
		}
	}
	hookinbox {
		storage %s
	}
}
http://%s {
	hookinbox bad {
		verify hotmart tok
		forward %s
		max_body %d
		dedupe off
	}
}
`, adminAddr, filepath.Join(dir, "data"), addr, app.url("/bad"), maxBody))
	srv := startServer(t, bin, config, addr, logFile(t, dir))
	defer srv.kill()
	admin := adminClient{t, adminAddr}

	post := func(body []byte, extra string) string {
		return fmt.Sprintf("POST / HTTP/1.1\r\nHost: %s\r\nX-HOTMART-HOTTOK: tok\r\nContent-Length: %d\r\n%s\r\n", addr, len(body), extra)
	}
	chunked := func(body []byte) (string, []byte) {
		head := fmt.Sprintf("POST / HTTP/1.1\r\nHost: %s\r\nX-HOTMART-HOTTOK: tok\r\nTransfer-Encoding: chunked\r\n\r\n", addr)
		return head, []byte(fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body))
	}
	sized := func(n int, tag byte) []byte { return bytes.Repeat([]byte{tag}, n) }
	invalidUTF8 := []byte("{\"x\":\"\xff\xfe\xc3\x28 \x00 \xed\xa0\x80\"}")
	chunkHead, chunkBody := chunked(sized(maxBody+1, 'c'))
	chunkOKHead, chunkOKBody := chunked(sized(maxBody, 'd'))

	tests := []struct {
		name   string
		head   string
		body   []byte
		step   int
		pause  time.Duration
		want   []int  // any of these; 0: closed without an answer
		stored []byte // what the app must get; nil: nothing is stored
	}{
		{name: "garbage request line is 400", head: "GARBAGE GARBAGE GARBAGE GARBAGE\r\n\r\n", want: []int{400}},
		// Fewer bytes than HTTP/2's preface: the server waits for the rest
		// of the head until read_header.
		{name: "short incomplete head is cut off", head: "POST / HT", want: []int{400, 408, 0}},
		{name: "bad content length is 400", head: fmt.Sprintf("POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: abc\r\n\r\n", addr), want: []int{400}},
		{name: "huge header is 431", head: fmt.Sprintf("POST / HTTP/1.1\r\nHost: %s\r\nX-Big: %s\r\nContent-Length: 0\r\n\r\n", addr, strings.Repeat("h", 2<<20)), want: []int{431, 0}},
		{name: "many headers are 431", head: fmt.Sprintf("POST / HTTP/1.1\r\nHost: %s\r\n%sContent-Length: 0\r\n\r\n", addr, strings.Repeat("X-Many: 0123456789012345678901234567890123456789\r\n", 40000)), want: []int{431, 0}},
		{name: "GET is 405", head: fmt.Sprintf("GET / HTTP/1.1\r\nHost: %s\r\n\r\n", addr), want: []int{405}},
		{name: "missing token is 401", head: fmt.Sprintf("POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: 2\r\n\r\n", addr), body: []byte("{}"), want: []int{401}},
		{name: "body of max_body is accepted", head: post(sized(maxBody, 'a'), ""), body: sized(maxBody, 'a'), want: []int{200}, stored: sized(maxBody, 'a')},
		{name: "body one over max_body is 413", head: post(sized(maxBody+1, 'b'), ""), body: sized(maxBody+1, 'b'), want: []int{413}},
		{name: "chunked body of max_body is accepted", head: chunkOKHead, body: chunkOKBody, want: []int{200}, stored: sized(maxBody, 'd')},
		{name: "chunked body one over max_body is 413", head: chunkHead, body: chunkBody, want: []int{413}},
		{name: "invalid UTF-8 body is accepted as bytes", head: post(invalidUTF8, ""), body: invalidUTF8, want: []int{200}, stored: invalidUTF8},
		{name: "slow sender within the read timeout is accepted", head: post([]byte(`{"slow":"but in time"}`), ""), body: []byte(`{"slow":"but in time"}`), step: 4, pause: 50 * time.Millisecond, want: []int{200}, stored: []byte(`{"slow":"but in time"}`)},
		{name: "slowloris body is cut off", head: post(sized(100, 's'), ""), body: sized(100, 's'), step: 1, pause: 300 * time.Millisecond, want: []int{400, 408, 0}},
		{name: "truncated body is not stored", head: post(sized(100, 't'), "Connection: close\r\n"), body: sized(50, 't'), want: []int{400, 408, 0}},
	}
	var accepted []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, took := rawExchange(t, addr, tt.head, tt.body, tt.step, tt.pause)
			ok := false
			for _, w := range tt.want {
				ok = ok || status == w
			}
			if !ok {
				t.Errorf("status %d after %v, want one of %v", status, took.Round(time.Millisecond), tt.want)
			}
			if took > 10*time.Second {
				t.Errorf("answered after %v: a sender can hold the server that long", took)
			}
			if tt.stored != nil {
				accepted = append(accepted, string(tt.stored))
			}
		})
	}
	if !srv.alive() {
		t.Fatalf("the server died: %v", srv.err)
	}
	// The server still takes ordinary requests.
	s := newSender("http://"+addr+"/", "X-HOTMART-HOTTOK", "tok")
	if a, err := s.send(`{"after":"all that"}`); err != nil || a.status != http.StatusOK {
		t.Fatalf("an ordinary request after the bad ones: %v %d", err, a.status)
	}
	accepted = append(accepted, `{"after":"all that"}`)

	waitFor(t, "the accepted events to be delivered", 20*time.Second, func() bool {
		return len(stand.missing(accepted)) == 0
	})
	in := admin.inbox("bad")
	stored := 0
	for _, n := range in.Counts {
		stored += n
	}
	if stored != len(accepted) {
		t.Errorf("the store holds %d events, want the %d accepted ones", stored, len(accepted))
	}
	if delivered, _ := stand.counts(); delivered != len(accepted) {
		t.Errorf("the app got %d distinct bodies, want the %d accepted ones byte for byte", delivered, len(accepted))
	}
}
