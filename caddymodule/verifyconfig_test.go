package caddymodule

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/hookinbox/hookinbox/internal/verify"
)

// Each verify line adapts to the JSON of its module: the scheme as the
// inline key, the options as verify.Config names them.
func TestVerifyConfigParse(t *testing.T) {
	cases := []struct {
		name  string
		input string
		want  string
	}{{
		name:  "a scheme and a secret",
		input: `verify hotmart {env.HOTTOK}`,
		want:  `{"scheme":"hotmart","secrets":["{env.HOTTOK}"]}`,
	}, {
		name:  "several secrets and a tolerance",
		input: "verify stripe whsec_a whsec_b {\n\ttolerance 10m\n}",
		want:  `{"scheme":"stripe","secrets":["whsec_a","whsec_b"],"tolerance":600000000000}`,
	}, {
		name:  "tolerance off",
		input: "verify standard {env.S} {\n\ttolerance off\n}",
		want:  `{"scheme":"standard","secrets":["{env.S}"],"tolerance":-1}`,
	}, {
		name:  "token in a header, value in the block",
		input: "verify token {\n\theader X-Token\n\tvalue {env.T}\n}",
		want:  `{"header":"X-Token","scheme":"token","secrets":["{env.T}"]}`,
	}, {
		name:  "token in the query",
		input: "verify token {\n\tquery t\n\tvalue a b\n}",
		want:  `{"query":"t","scheme":"token","secrets":["a","b"]}`,
	}, {
		name:  "pagarme takes no secret",
		input: "verify pagarme {\n\tjwks https://example.com/jwks.json\n}",
		want:  `{"jwks":"https://example.com/jwks.json","scheme":"pagarme"}`,
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
		want: `{"algorithm":"sha256","content":"{timestamp}.{body}","encoding":"hex","header":"X-Sig","id_header":"X-Id","prefix":"sha256=",` +
			`"scheme":"hmac","secrets":["{env.S}"],"timestamp_header":"X-Ts","tolerance":300000000000,"url":"https://example.com/hooks/x"}`,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := caddyfile.NewTestDispenser(tc.input)
			d.Next()
			got, err := parseVerify(d)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			// The JSON decodes into the scheme's module and back.
			var raw map[string]any
			json.Unmarshal(got, &raw)
			name := raw["scheme"].(string)
			delete(raw, "scheme")
			b, _ := json.Marshal(raw)
			s := &Scheme{name: name}
			if err := caddy.StrictUnmarshalJSON(b, s); err != nil {
				t.Fatalf("JSON %s does not decode into the module: %v", b, err)
			}
			if again := caddyconfig.JSONModuleObject(s, "scheme", name, nil); string(again) != tc.want {
				t.Fatalf("JSON round trip: %s", again)
			}
		})
	}
}

func TestVerifyConfigParseInsideHandlerBlock(t *testing.T) {
	d := caddyfile.NewTestDispenser("hookinbox shop {\n\tverify shopify {env.A} {\n\t\tsecret {env.B}\n\t}\n\tforward http://x\n}")
	d.Next()
	d.NextArg()
	var got []string
	var rest []string
	for d.NextBlock(0) {
		if d.Val() == "verify" {
			raw, err := parseVerify(d)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(raw))
			continue
		}
		rest = append(rest, d.Val())
		d.RemainingArgs()
	}
	want := []string{`{"scheme":"shopify","secrets":["{env.A}","{env.B}"]}`}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(rest, []string{"forward"}) {
		t.Fatalf("got %+v, then %v", got, rest)
	}
}

func TestVerifyConfigParseErrors(t *testing.T) {
	for name, input := range map[string]string{
		"no scheme":              "verify",
		"unknown scheme":         "verify strype s",
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

// Every scheme of the verify package is a module of the namespace, and
// the handler's JSON names it by its inline key.
func TestEverySchemeIsAModule(t *testing.T) {
	if got, want := schemeNames(), verify.Schemes(); !reflect.DeepEqual(got, want) {
		t.Fatalf("modules %v, schemes %v", got, want)
	}
}

func TestVerifyConfigResolvesSecretPlaceholders(t *testing.T) {
	t.Setenv("HOOKINBOX_TEST_HOTTOK", "hottok-from-env")
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("hottok-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v := &Scheme{name: "hotmart", Config: verify.Config{Secrets: []string{"{env.HOOKINBOX_TEST_HOTTOK}", "{file." + file + "}"}}}
	if err := v.build(zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v.SecretValues(), []string{"hottok-from-env", "hottok-from-file"}) {
		t.Fatalf("secrets = %q", v.SecretValues())
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
		v := &Scheme{name: "hotmart", Config: verify.Config{Secrets: []string{s}}}
		if err := v.build(zap.NewNop()); err == nil {
			t.Errorf("%s: accepted", s)
		}
	}
}

func TestVerifyConfigErrorsNeverShowTheSecret(t *testing.T) {
	t.Setenv("HOOKINBOX_TEST_SECRET", "whsec_***top-secret***")
	v := &Scheme{name: "standard", Config: verify.Config{Secrets: []string{"{env.HOOKINBOX_TEST_SECRET}"}}}
	err := v.build(zap.NewNop())
	if err == nil {
		t.Fatal("a secret that is not base64 was accepted")
	}
	if strings.Contains(err.Error(), "top-secret") {
		t.Fatalf("error shows the secret: %v", err)
	}
}
