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
	// keyed: the scheme verifies with keys the sender publishes (Config.Keys),
	// not with secrets; its Config takes none.
	keyed bool
	// bodySecrets are the body fields that carry the scheme's static secret:
	// delivered as they came, shown redacted everywhere else.
	bodySecrets []string
}

func always(Config) bool { return true }

// registry maps scheme names, as written after `verify`, to their
// implementation. Each sender family lives in its own file.
var registry = map[string]scheme{
	"hotmart":  {build: newHotmart, sample: hotmartSample, bodySecrets: []string{"hottok"}},
	"hubla":    {build: newHubla, sample: hublaSample},
	"token":    {build: newToken, sample: genericSample},
	"stripe":   {build: newStripe, signsTime: always, sample: stripeSample},
	"standard": {build: newStandard, signsTime: always, sample: standardSample},
	"github":   {build: newGitHub, sample: githubSample},
	"shopify":  {build: newShopify, sample: shopifySample},
	"slack":    {build: newSlack, signsTime: always, sample: slackSample},
	"paddle":   {build: newPaddle, signsTime: always, sample: paddleSample},
	"hmac":     {build: newHMAC, signsTime: func(c Config) bool { return c.TimestampHeader != "" }, sample: genericSample},

	// Beyond the SPEC's table.
	"asaas":       {build: newAsaas, sample: asaasSample},
	"bitbucket":   {build: newBitbucket, sample: bitbucketSample},
	"calendly":    {build: newCalendly, signsTime: always, sample: calendlySample},
	"discord":     {build: newDiscord, signsTime: always, sample: discordSample, sign: signDiscord},
	"gitlab":      {build: newGitLab, sample: gitlabSample},
	"intercom":    {build: newIntercom, sample: intercomSample},
	"linear":      {build: newLinear, signsTime: always, sample: linearSample},
	"mailgun":     {build: newMailgun, signsTime: always, sample: mailgunSample},
	"mercadopago": {build: newMercadoPago, signsTime: always, sample: mercadopagoSample},
	"pagerduty":   {build: newPagerDuty, sample: pagerdutySample},
	"sendgrid":    {build: newSendGrid, signsTime: always, sample: sendgridSample, sign: signSendGrid},
	"square":      {build: newSquare, sample: squareSample},
	"twilio":      {build: newTwilio, sample: twilioSample},
	"typeform":    {build: newTypeform, sample: typeformSample},
	"woocommerce": {build: newWooCommerce, sample: woocommerceSample},
	"zendesk":     {build: newZendesk, signsTime: always, sample: zendeskSample},
	"zoom":        {build: newZoom, signsTime: always, sample: zoomSample},

	// The Brazilian platforms of the SPEC's second table.
	"kiwify":     {build: newKiwify, sample: kiwifySample},
	"eduzz":      {build: newEduzz, sample: eduzzSample},
	"pagbank":    {build: newPagBank, sample: pagbankSample},
	"pagarme":    {build: newPagarme, sample: pagarmeSample, sign: signPagarme, keyed: true},
	"monetizze":  {build: newMonetizze, sample: monetizzeSample, bodySecrets: []string{"chave_unica"}},
	"perfectpay": {build: newPerfectPay, sample: perfectpaySample, bodySecrets: []string{"token"}},
	"cakto":      {build: newCakto, sample: caktoSample, bodySecrets: []string{"secret"}},
}

// BodySecrets lists the body fields in which the sender of scheme carries
// its static secret (Hotmart's v1 hottok, Monetizze's chave_unica, …), for
// redaction by name. Nil for the other schemes.
func BodySecrets(scheme string) []string {
	return registry[scheme].bodySecrets
}

// Keyed reports whether scheme verifies with keys the sender publishes
// (Config.Keys, Config.JWKS) instead of secrets.
func Keyed(scheme string) bool {
	return registry[scheme].keyed
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
