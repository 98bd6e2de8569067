package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestBuildsLikeXcaddy does what `xcaddy build --with
// github.com/hookinbox/hookinbox/caddymodule` does: a fresh module whose
// generated main imports Caddy's standard modules and the plugin, with a
// replace to this checkout, built with the go command. Then the binary must
// list the plugin's modules.
func TestBuildsLikeXcaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a whole Caddy")
	}
	_, here, _, _ := runtime.Caller(0)
	checkout := filepath.Clean(filepath.Join(filepath.Dir(here), "..", ".."))
	work := t.TempDir()

	const main = `package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy modules here
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/hookinbox/hookinbox/caddymodule"
)

func main() {
	caddycmd.Main()
}
`
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(work, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("main.go", main)
	// xcaddy pins Caddy at the requested version; the plugin's go.sum
	// covers every module the build needs, so it works from the module
	// cache alone.
	write("go.mod", "module caddy\n\ngo 1.26\n\nrequire (\n\tgithub.com/caddyserver/caddy/v2 v2.11.9\n\tgithub.com/hookinbox/hookinbox v0.0.0\n)\n\nreplace github.com/hookinbox/hookinbox => "+checkout+"\n")
	sum, err := os.ReadFile(filepath.Join(checkout, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	write("go.sum", string(sum))

	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("go", "mod", "tidy")
	run("go", "build", "-o", "caddy", ".")
	modules := run("./caddy", "list-modules")
	for _, id := range []string{"hookinbox", "http.handlers.hookinbox", "http.handlers.hookinbox_ui", "admin.api.hookinbox"} {
		if !strings.Contains(modules, id+"\n") {
			t.Errorf("the xcaddy-style build does not list module %s", id)
		}
	}
}
