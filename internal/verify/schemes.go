package verify

import (
	"net/http"
	"net/url"
	"sort"
	"time"
)

// scheme is one entry of the registry: how to build a verifier from a
// Config, and what a test event of that sender looks like.
type scheme struct {
	build func(Config) (Verifier, error)
	// signsTime reports whether the configured scheme checks a signed
	// timestamp, i.e. whether Config.Tolerance means anything. Nil: never.
	signsTime func(Config) bool
	// sample returns a realistic event body carrying the event id id.
	sample func(id string, now time.Time) []byte
	// sign, when set, replaces signing through the built verifier; the
	// asymmetric schemes need it, since their Config holds a public key.
	sign func(c Config, body []byte, target *url.URL, now time.Time) (http.Header, error)
}

func always(Config) bool { return true }

// registry maps scheme names, as written after `verify`, to their
// implementation. Each sender family lives in its own file.
var registry = map[string]scheme{
	"hotmart":  {build: newHotmart, sample: hotmartSample},
	"hubla":    {build: newHubla, sample: hublaSample},
	"token":    {build: newToken, sample: genericSample},
	"stripe":   {build: newStripe, signsTime: always, sample: stripeSample},
	"standard": {build: newStandard, signsTime: always, sample: standardSample},
	"github":   {build: newGitHub, sample: githubSample},
	"shopify":  {build: newShopify, sample: shopifySample},
	"slack":    {build: newSlack, signsTime: always, sample: slackSample},
	"paddle":   {build: newPaddle, signsTime: always, sample: paddleSample},
	"hmac":     {build: newHMAC, signsTime: func(c Config) bool { return c.TimestampHeader != "" }, sample: genericSample},
}

func lookupScheme(name string) (scheme, bool) {
	s, ok := registry[name]
	return s, ok
}

func schemeNames() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
