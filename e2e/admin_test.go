package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tickfan/tickfan/server"
)

// TestAdminListener: with --admin-addr the metrics and the status page
// move there, and the HTTP port keeps only the publish API and the health
// checks.
func TestAdminListener(t *testing.T) {
	t.Parallel()
	n := start(t, func(c *server.Config) { c.AdminAddr = "127.0.0.1:0" })
	if n.srv.AdminAddr() == "" {
		t.Fatal("AdminAddr empty with Config.AdminAddr set")
	}
	admin := &node{srv: n.srv, base: "http://" + n.srv.AdminAddr()}
	for _, c := range []struct {
		n    *node
		path string
		want int
	}{
		{n, "/metrics", http.StatusNotFound},
		{n, "/", http.StatusNotFound},
		{n, "/healthz", http.StatusOK},
		{n, "/readyz", http.StatusOK},
		{n, "/api/status", http.StatusNotFound},
		{n, "/api/status/stream", http.StatusNotFound},
		{admin, "/metrics", http.StatusOK},
		{admin, "/", http.StatusOK},
		{admin, "/api/status", http.StatusOK},
	} {
		r, err := c.n.get(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != c.want {
			t.Errorf("GET %s%s: status %d, want %d", c.n.base, c.path, r.status, c.want)
		}
	}
	n.publish(t, "book.ADMIN", 1, false)
	if r, _ := admin.get("/metrics"); !strings.Contains(string(r.raw), "tickfan_publications_total 1") {
		t.Errorf("admin /metrics lacks the publication:\n%s", r.raw)
	}
	if r, err := admin.post("/api/publish", "apikey "+apiKey, item("book.ADMIN", 2, false)); err != nil || r.status == http.StatusOK {
		t.Errorf("POST /api/publish on the admin listener: %d %v, want refused", r.status, err)
	}
}

// TestAdminListenerOff: without --admin-addr there is no admin listener and
// the HTTP port serves the metrics.
func TestAdminListenerOff(t *testing.T) {
	t.Parallel()
	n := start(t)
	if a := n.srv.AdminAddr(); a != "" {
		t.Fatalf("AdminAddr %q without Config.AdminAddr, want empty", a)
	}
	if r, err := n.get("/metrics"); err != nil || r.status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", r.status, err)
	}
}

// TestAdminListenerOutsideBudget: the admin listener's connections are not
// in --max-conns, so the metrics can be read while clients fill the node.
func TestAdminListenerOutsideBudget(t *testing.T) {
	t.Parallel()
	n := start(t, func(c *server.Config) { c.AdminAddr, c.MaxConns = "127.0.0.1:0", 1 })
	c := dialWS(t, n, protoJSON)
	c.alive(t)
	admin := &node{srv: n.srv, base: "http://" + n.srv.AdminAddr()}
	r, err := admin.get("/metrics")
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("admin GET /metrics with the node full: %d %v", r.status, err)
	}
	if v := parseMetrics(t, r.raw).sum("tickfan_connections", "transport", "ws"); v != 1 {
		t.Fatalf(`tickfan_connections{transport="ws"} = %v, want 1`, v)
	}
}
