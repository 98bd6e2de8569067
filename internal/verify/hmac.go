package verify

import (
	"errors"
	"fmt"
	"hash"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// hmacVerifier checks one HMAC signature in one header, over content
// built from a template. It is the generic hmac scheme, and the engine
// of every sender whose signature is a single MAC (github, shopify,
// bitbucket, square, …).
type hmacVerifier struct {
	scheme   string
	header   string
	prefix   string
	hash     func() hash.Hash
	enc      encoding
	content  template
	tsHeader string
	// parseTime reads the timestamp header; nil means Unix seconds or
	// milliseconds.
	parseTime func(string) (time.Time, bool)
	idHeader  string
	window    time.Duration
	keys      [][]byte
	url       string // the public URL, for {url}; empty: the request's
	// eventID finds the sender's event id; nil means the idHeader.
	eventID func(r *Request) string
	// decorate adds the other headers the sender sends, for Sign.
	decorate func(h http.Header, body []byte)
	// handshake answers a signed endpoint check (Slack's url_verification,
	// Zoom's endpoint.url_validation) with the key that matched.
	handshake func(r *Request, key []byte) *Handshake
}

func newHMAC(c Config) (Verifier, error) {
	if err := only(c, "header", "algorithm", "encoding", "prefix", "content", "timestamp_header", "id_header", "url"); err != nil {
		return nil, err
	}
	if c.Header == "" {
		return nil, errors.New("header is required: the header that carries the signature")
	}
	h, err := hashFor(c.Algorithm)
	if err != nil {
		return nil, err
	}
	enc, err := encodingFor(c.Encoding)
	if err != nil {
		return nil, err
	}
	content := c.Content
	if content == "" {
		content = "{body}"
	}
	tmpl, err := parseTemplate(content)
	if err != nil {
		return nil, err
	}
	if tmpl.uses(partTimestamp) && c.TimestampHeader == "" {
		return nil, errors.New("content uses {timestamp} but timestamp_header is not set")
	}
	if tmpl.uses(partID) && c.IDHeader == "" {
		return nil, errors.New("content uses {id} but id_header is not set")
	}
	if c.TimestampHeader != "" && !tmpl.uses(partTimestamp) && !tmpl.usesHeader(c.TimestampHeader) {
		// An unsigned timestamp proves nothing: anyone can replay the
		// request with a fresh one.
		return nil, errors.New("timestamp_header is set but content does not sign it (add {timestamp})")
	}
	var w time.Duration
	if c.TimestampHeader != "" {
		w = window(c, 5*time.Minute)
	}
	return &hmacVerifier{
		scheme:   "hmac",
		header:   c.Header,
		prefix:   c.Prefix,
		hash:     h,
		enc:      enc,
		content:  tmpl,
		tsHeader: c.TimestampHeader,
		idHeader: c.IDHeader,
		window:   w,
		keys:     secretBytes(c.Secrets),
		url:      c.URL,
	}, nil
}

func (v *hmacVerifier) Verify(r *Request) (Result, error) {
	sig, rej := parseHMACSignature(r.Header.Get(v.header), v.prefix, v.enc)
	if rej != nil {
		return Result{}, rej
	}
	var ts string
	var signed time.Time
	if v.tsHeader != "" {
		ts = r.Header.Get(v.tsHeader)
		if ts == "" {
			return Result{}, unauthorized(ReasonTimestampMissing)
		}
		parse := v.parseTime
		if parse == nil {
			parse = unixSecondsOrMillis
		}
		var ok bool
		if signed, ok = parse(ts); !ok {
			return Result{}, malformed(ReasonTimestampMalformed)
		}
	}
	var id string
	if v.idHeader != "" {
		id = r.Header.Get(v.idHeader)
		if id == "" && v.content.uses(partID) {
			return Result{}, unauthorized(ReasonIDMissing)
		}
	}
	msg := v.content.render(r, v.url, ts, id)
	key := matchKey(v.keys, sig, func(k []byte) []byte { return mac(v.hash, k, msg) })
	if key == nil {
		return Result{}, unauthorized(ReasonSignatureMismatch)
	}
	if v.tsHeader != "" {
		if err := checkTime(signed, r.Now, v.window); err != nil {
			return Result{}, err
		}
	}
	res := Result{Scheme: v.scheme, EventID: id}
	if v.eventID != nil {
		res.EventID = v.eventID(r)
	}
	if v.handshake != nil {
		res.Handshake = v.handshake(r, key)
	}
	return res, nil
}

// parseHMACSignature takes the prefix off a signature header's value and
// decodes the rest.
func parseHMACSignature(value, prefix string, enc encoding) ([]byte, *Rejection) {
	if value == "" {
		return nil, unauthorized(ReasonSignatureMissing)
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(value), prefix)
	if !ok || rest == "" {
		return nil, malformed(ReasonSignatureMalformed)
	}
	sig, err := enc.decode(rest)
	if err != nil || len(sig) == 0 {
		return nil, malformed(ReasonSignatureMalformed)
	}
	return sig, nil
}

func (v *hmacVerifier) sign(body []byte, target *url.URL, now time.Time) (http.Header, error) {
	h := http.Header{}
	if v.decorate != nil {
		v.decorate(h, body)
	}
	var ts, id string
	if v.tsHeader != "" {
		ts = strconv.FormatInt(now.Unix(), 10)
		if v.parseTime != nil {
			ts = now.UTC().Format(time.RFC3339)
		}
		h.Set(v.tsHeader, ts)
	}
	if v.idHeader != "" {
		if id = h.Get(v.idHeader); id == "" {
			id = newID()
			h.Set(v.idHeader, id)
		}
	}
	r := &Request{Method: http.MethodPost, URL: target, Header: h, Body: body, Now: now}
	sig := mac(v.hash, v.keys[0], v.content.render(r, v.url, ts, id))
	h.Set(v.header, v.prefix+v.enc.encode(sig))
	return h, nil
}

// A template is signed content: literal text and placeholders.
type template []part

type partKind int

const (
	partText partKind = iota
	partBody
	partTimestamp
	partID
	partHeader
	partURL
)

type part struct {
	kind partKind
	text string // the literal, or the header name
}

// parseTemplate reads a content template: {body}, {timestamp}, {id},
// {url} and {header.<Name>}; any other text is literal. A literal brace
// is written {{ or }}.
func parseTemplate(s string) (template, error) {
	var t template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t = append(t, part{kind: partText, text: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "{{"), strings.HasPrefix(s[i:], "}}"):
			lit.WriteByte(s[i])
			i++
		case s[i] == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("content: unclosed { at offset %d", i)
			}
			name := s[i+1 : i+end]
			var p part
			switch {
			case name == "body":
				p.kind = partBody
			case name == "timestamp":
				p.kind = partTimestamp
			case name == "id":
				p.kind = partID
			case name == "url":
				p.kind = partURL
			case strings.HasPrefix(name, "header.") && len(name) > len("header."):
				p = part{kind: partHeader, text: textproto.CanonicalMIMEHeaderKey(name[len("header."):])}
			default:
				return nil, fmt.Errorf("content: unknown placeholder {%s} (want {body}, {timestamp}, {id}, {url} or {header.<Name>})", name)
			}
			flush()
			t = append(t, p)
			i += end
		case s[i] == '}':
			return nil, fmt.Errorf("content: unmatched } at offset %d (write }} for a literal one)", i)
		default:
			lit.WriteByte(s[i])
		}
	}
	flush()
	return t, nil
}

func (t template) uses(k partKind) bool {
	for _, p := range t {
		if p.kind == k {
			return true
		}
	}
	return false
}

func (t template) usesHeader(name string) bool {
	name = textproto.CanonicalMIMEHeaderKey(name)
	for _, p := range t {
		if p.kind == partHeader && p.text == name {
			return true
		}
	}
	return false
}

// render builds the signed content of r.
func (t template) render(r *Request, publicURL, ts, id string) []byte {
	var b []byte
	for _, p := range t {
		switch p.kind {
		case partText:
			b = append(b, p.text...)
		case partBody:
			b = append(b, r.Body...)
		case partTimestamp:
			b = append(b, ts...)
		case partID:
			b = append(b, id...)
		case partHeader:
			b = append(b, r.Header.Get(p.text)...)
		case partURL:
			b = append(b, signedURL(publicURL, r.URL)...)
		}
	}
	return b
}

// signedURL is the URL a sender signs: the configured public URL when
// there is one (with the request's query when it has none of its own),
// else the URL of the request.
func signedURL(public string, req *url.URL) string {
	if public == "" {
		if req == nil {
			return ""
		}
		return req.String()
	}
	if req != nil && req.RawQuery != "" && !strings.Contains(public, "?") {
		return public + "?" + req.RawQuery
	}
	return public
}

// fixedHMAC builds the verifier of a sender whose signature is a single
// HMAC in a fixed header: v holds the sender's choices, c gives the
// secrets. Content defaults to the body alone.
func fixedHMAC(c Config, v hmacVerifier, allowed ...string) (Verifier, error) {
	if err := only(c, allowed...); err != nil {
		return nil, err
	}
	if v.content == nil {
		v.content = template{{kind: partBody}}
	}
	v.keys = secretBytes(c.Secrets)
	v.url = c.URL
	return &v, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
