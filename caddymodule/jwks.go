package caddymodule

import (
	"context"
	"crypto/rsa"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/hookinbox/hookinbox/internal/verify"
)

// A sender's JSON Web Key Set (Pagar.me's), fetched over HTTP and cached:
// the network half of the pagarme scheme, whose check stays in verify.

const (
	// jwksRefetchEvery bounds the fetches caused by signatures naming a key
	// the cache does not hold: a sender that rotates its key is followed
	// within a minute, and a stranger sending made-up key ids cannot make
	// hookinbox hammer the sender's JWKS endpoint.
	jwksRefetchEvery = time.Minute
	jwksTimeout      = 10 * time.Second
	jwksMaxSize      = 1 << 20
)

// jwksCaches holds one cache per JWKS URL for the whole process, so that
// inboxes sharing a sender, and config reloads, share its keys and its
// refetch budget.
var jwksCaches = struct {
	sync.Mutex
	byURL map[string]*jwksCache
}{byURL: map[string]*jwksCache{}}

// jwksFor returns the cache of the JWKS at rawURL.
func jwksFor(rawURL string, logger *zap.Logger) (*jwksCache, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("jwks: %q is not an http(s) URL", rawURL)
	}
	jwksCaches.Lock()
	defer jwksCaches.Unlock()
	c := jwksCaches.byURL[rawURL]
	if c == nil {
		c = &jwksCache{url: rawURL, client: &http.Client{Timeout: jwksTimeout}, now: time.Now}
		jwksCaches.byURL[rawURL] = c
	}
	c.logger.Store(logger)
	return c, nil
}

// jwksCache is a verify.KeySet over a JWKS URL. The keys are fetched at the
// first request; a key id not among them fetches the set again, at most
// once every jwksRefetchEvery (the first fetch included). A failed fetch
// keeps the keys held.
type jwksCache struct {
	url    string
	client *http.Client
	now    func() time.Time
	logger syncLogger

	mu        sync.Mutex // held while fetching: one fetch at a time
	keys      map[string]*rsa.PublicKey
	lastFetch time.Time
}

// Key returns the key with id kid, fetching the set when needed.
func (c *jwksCache) Key(kid string) *rsa.PublicKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := c.keys[kid]; k != nil {
		return k
	}
	if now := c.now(); c.lastFetch.IsZero() || now.Sub(c.lastFetch) >= jwksRefetchEvery {
		c.lastFetch = now
		c.fetch()
	}
	return c.keys[kid]
}

// fetch replaces the keys with the set at c.url; c.mu is held.
func (c *jwksCache) fetch() {
	keys, err := c.get()
	if err != nil {
		c.logger.Load().Warn("fetching the sender's JWKS; keeping the keys held",
			zap.String("jwks", c.url), zap.Int("keys_held", len(c.keys)), zap.Error(err))
		return
	}
	c.keys = keys
}

func (c *jwksCache) get() (map[string]*rsa.PublicKey, error) {
	ctx, cancel := context.WithTimeout(context.Background(), jwksTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxSize))
	if err != nil {
		return nil, err
	}
	return verify.ParseJWKS(data)
}

// syncLogger is the logger of the config that last used a cache, which
// outlives config reloads.
type syncLogger struct {
	mu sync.Mutex
	l  *zap.Logger
}

func (s *syncLogger) Store(l *zap.Logger) {
	s.mu.Lock()
	s.l = l
	s.mu.Unlock()
}

func (s *syncLogger) Load() *zap.Logger {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.l == nil {
		return zap.NewNop()
	}
	return s.l
}

// Interface guard
var _ verify.KeySet = (*jwksCache)(nil)
