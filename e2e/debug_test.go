package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tickfan/tickfan/server"
)

// pprof paths the public HTTP listener must never serve: the command line
// may hold --api-key and --jwt-secret.
var pprofPaths = []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/symbol"}

func TestPprofNotOnHTTP(t *testing.T) {
	t.Parallel()
	n := start(t)
	if got := n.srv.DebugAddr(); got != "" {
		t.Errorf("DebugAddr() = %q without Config.DebugAddr, want \"\"", got)
	}
	for _, path := range pprofPaths {
		if r := mustGet(t, n.base+path); r.status != http.StatusNotFound {
			t.Errorf("GET %s on the HTTP listener: status %d, want 404", path, r.status)
		}
	}
}

func TestPprofOnDebugListener(t *testing.T) {
	t.Parallel()
	n := start(t, func(c *server.Config) { c.DebugAddr = "127.0.0.1:0" })
	addr := n.srv.DebugAddr()
	if !strings.HasPrefix(addr, "127.0.0.1:") || addr == "127.0.0.1:0" {
		t.Fatalf("DebugAddr() = %q, want the bound 127.0.0.1 address", addr)
	}
	if addr == n.srv.HTTPAddr() {
		t.Fatalf("debug and HTTP listeners share %s", addr)
	}
	for _, path := range pprofPaths {
		if r := mustGet(t, "http://"+addr+path); r.status != http.StatusOK {
			t.Errorf("GET %s on the debug listener: status %d, want 200", path, r.status)
		}
		if r := mustGet(t, n.base+path); r.status != http.StatusNotFound {
			t.Errorf("GET %s on the HTTP listener with a debug listener: status %d, want 404", path, r.status)
		}
	}
	// The debug listener serves pprof only, not the API.
	for _, path := range []string{"/metrics", "/healthz"} {
		if r := mustGet(t, "http://"+addr+path); r.status != http.StatusNotFound {
			t.Errorf("GET %s on the debug listener: status %d, want 404", path, r.status)
		}
	}
}

func mustGet(t *testing.T, url string) httpResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := doHTTP(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return r
}
