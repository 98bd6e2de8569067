package caddymodule

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/hookinbox/hookinbox/internal/verify"
)

func TestVerifyConfigParse(t *testing.T) {
	cases := []struct {
		name  string
		input string
		want  VerifyConfig
	}{{
		name:  "a scheme and a secret",
		input: `verify hotmart {env.HOTTOK}`,
		want:  VerifyConfig{Scheme: "hotmart", Secrets: []string{"{env.HOTTOK}"}},
	}, {
		name:  "several secrets and a tolerance",
		input: "verify stripe whsec_a whsec_b {\n\ttolerance 10m\n}",
		want:  VerifyConfig{Scheme: "stripe", Secrets: []string{"whsec_a", "whsec_b"}, Tolerance: caddy.Duration(10 * time.Minute)},
	}, {
		name:  "tolerance off",
		input: "verify standard {env.S} {\n\ttolerance off\n}",
		want:  VerifyConfig{Scheme: "standard", Secrets: []string{"{env.S}"}, Tolerance: -1},
	}, {
		name:  "token in a header, value in the block",
		input: "verify token {\n\theader X-Token\n\tvalue {env.T}\n}",
		want:  VerifyConfig{Scheme: "token", Header: "X-Token", Secrets: []string{"{env.T}"}},
	}, {
		name:  "token in the query",
		input: "verify token {\n\tquery t\n\tvalue a b\n}",
		want:  VerifyConfig{Scheme: "token", Query: "t", Secrets: []string{"a", "b"}},
	}, {
		name: "generic hmac, every option",
		input: `verify hmac {
			header X-Sig
			algorithm sha256
			encoding hex
			prefix sha256=
			content "{timestamp}.{body}"
			timestamp_header X-Ts
			id_header X-Id
			tolerance 5m
			secret {env.S}
			url https://example.com/hooks/x
		}`,
		want: VerifyConfig{Scheme: "hmac", Header: "X-Sig", Algorithm: "sha256", Encoding: "hex", Prefix: "sha256=",
			Content: "{timestamp}.{body}", TimestampHeader: "X-Ts", IDHeader: "X-Id", Tolerance: caddy.Duration(5 * time.Minute),
			Secrets: []string{"{env.S}"}, URL: "https://example.com/hooks/x"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := caddyfile.NewTestDispenser(tc.input)
			d.Next()
			got, err := parseVerify(d)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
			// The JSON form round-trips.
			b, _ := json.Marshal(got)
			var back VerifyConfig
			if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, got) {
				t.Fatalf("JSON round trip: %s -> %+v (%v)", b, back, err)
			}
		})
	}
}

func TestVerifyConfigParseInsideHandlerBlock(t *testing.T) {
	d := caddyfile.NewTestDispenser("hookinbox shop {\n\tverify shopify {env.A} {\n\t\tsecret {env.B}\n\t}\n\tforward http://x\n}")
	d.Next()
	d.NextArg()
	var got []VerifyConfig
	var rest []string
	for d.NextBlock(0) {
		if d.Val() == "verify" {
			vc, err := parseVerify(d)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, vc)
			continue
		}
		rest = append(rest, d.Val())
		d.RemainingArgs()
	}
	want := []VerifyConfig{{Scheme: "shopify", Secrets: []string{"{env.A}", "{env.B}"}}}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(rest, []string{"forward"}) {
		t.Fatalf("got %+v, then %v", got, rest)
	}
}

func TestVerifyConfigParseErrors(t *testing.T) {
	for name, input := range map[string]string{
		"no scheme":              "verify",
		"no secret":              "verify stripe",
		"unknown option":         "verify stripe s {\n\ttolerence 5m\n}",
		"bad tolerance":          "verify stripe s {\n\ttolerance soon\n}",
		"negative tolerance":     "verify stripe s {\n\ttolerance -5m\n}",
		"option without value":   "verify token s {\n\theader\n}",
		"option with two values": "verify token s {\n\theader A B\n}",
		"option given twice":     "verify token s {\n\theader A\n\theader B\n}",
		"secret without value":   "verify stripe {\n\tsecret\n}",
	} {
		t.Run(name, func(t *testing.T) {
			d := caddyfile.NewTestDispenser(input)
			d.Next()
			if _, err := parseVerify(d); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestVerifyConfigResolvesSecretPlaceholders(t *testing.T) {
	t.Setenv("HOOKINBOX_TEST_HOTTOK", "hottok-from-env")
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("hottok-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vc := VerifyConfig{Scheme: "hotmart", Secrets: []string{"{env.HOOKINBOX_TEST_HOTTOK}", "{file." + file + "}"}}
	c, err := vc.config(caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Secrets, []string{"hottok-from-env", "hottok-from-file"}) {
		t.Fatalf("secrets = %q", c.Secrets)
	}
	v, err := vc.verifier(caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"hottok-from-env", "hottok-from-file"} {
		if _, err := v.Verify(&verify.Request{Header: http.Header{"X-Hotmart-Hottok": {tok}}, Body: []byte(`{"id":"e"}`)}); err != nil {
			t.Errorf("%s: %v", tok, err)
		}
	}
}

func TestVerifyConfigUnsetPlaceholderIsAnError(t *testing.T) {
	os.Unsetenv("HOOKINBOX_TEST_UNSET")
	for _, s := range []string{"{env.HOOKINBOX_TEST_UNSET}", "{evn.TYPO}"} {
		vc := VerifyConfig{Scheme: "hotmart", Secrets: []string{s}}
		if _, err := vc.verifier(caddy.NewReplacer()); err == nil {
			t.Errorf("%s: accepted", s)
		}
	}
}

func TestVerifyConfigErrorsNeverShowTheSecret(t *testing.T) {
	t.Setenv("HOOKINBOX_TEST_SECRET", "whsec_***top-secret***")
	vc := VerifyConfig{Scheme: "standard", Secrets: []string{"{env.HOOKINBOX_TEST_SECRET}"}}
	_, err := vc.verifier(caddy.NewReplacer())
	if err == nil {
		t.Fatal("a secret that is not base64 was accepted")
	}
	if strings.Contains(err.Error(), "top-secret") {
		t.Fatalf("error shows the secret: %v", err)
	}
}
