package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// TestStatusPageAddresses: the status page names addresses a client can
// dial; a listener bound to a specific host keeps it whatever Host the page
// was asked for by (a wildcard host becomes that Host: server.TestDialAddr).
func TestStatusPageAddresses(t *testing.T) {
	t.Parallel()
	n := start(t)
	req, err := http.NewRequest(http.MethodGet, n.base+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "md.example.test:8082"
	r, err := doHTTP(req)
	if err != nil {
		t.Fatal(err)
	}
	if r.status != http.StatusOK {
		t.Fatalf("GET /: status %d", r.status)
	}
	page := string(r.raw)
	for _, want := range []string{"ws://" + n.srv.WSAddr() + "/ws", n.srv.TCPAddr()} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %s:\n%s", want, page)
		}
	}
	if strings.Contains(page, "md.example.test") || strings.Contains(page, "/debug/pprof") {
		t.Errorf("status page names the request's host or pprof:\n%s", page)
	}
}
