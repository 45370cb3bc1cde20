package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tickfan/tickfan/server"
)

// rawHTTP is one HTTP/1.1 connection to the server's HTTP port, driven by
// hand so that a test sees exactly when the server answers and closes.
type rawHTTP struct {
	c net.Conn
	r *bufio.Reader
}

func dialHTTP(t testing.TB, addr string) *rawHTTP {
	t.Helper()
	c := dialConn(t, "http", addr)
	return &rawHTTP{c: c, r: bufio.NewReader(c)}
}

// get sends GET path (keep-alive) and returns the answer with its body read.
func (h *rawHTTP) get(path string) (int, []byte, error) {
	_ = h.c.SetDeadline(time.Now().Add(readTimeout))
	if _, err := fmt.Fprintf(h.c, "GET %s HTTP/1.1\r\nHost: tickfan\r\n\r\n", path); err != nil {
		return 0, nil, err
	}
	resp, err := http.ReadResponse(h.r, nil)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// closedWithin reads until the server closes the connection. d is a
// generous bound, so that the test fails rather than hangs; it is no
// claim on how soon the server closes.
func (h *rawHTTP) closedWithin(t *testing.T, d time.Duration) {
	t.Helper()
	_ = h.c.SetReadDeadline(time.Now().Add(d))
	n, err := io.Copy(io.Discard, h.r)
	if err == nil || errors.Is(err, net.ErrClosed) || isReset(err) {
		return // EOF (io.Copy reports nil) or a reset: closed
	}
	if isTimeout(err) {
		t.Fatalf("HTTP connection still open after %v (read %d bytes)", d, n)
	}
	t.Fatalf("HTTP connection: %v", err)
}

func isReset(err error) bool { return err != nil && strings.Contains(err.Error(), "connection reset") }

// TestHTTPIdleConnectionClosed: a keep-alive connection that sends no
// further request is closed after Config.HTTPIdleTimeout, and leaves the
// HTTP connection count.
func TestHTTPIdleConnectionClosed(t *testing.T) {
	t.Parallel()
	const idle = 300 * time.Millisecond
	n := start(t, func(c *server.Config) { c.HTTPIdleTimeout = idle })
	h := dialHTTP(t, n.srv.HTTPAddr())
	if code, body, err := h.get("/healthz"); err != nil || code != http.StatusOK {
		t.Fatalf("GET /healthz: %d %s %v", code, body, err)
	}
	began := time.Now()
	h.closedWithin(t, idle+readTimeout)
	if d := time.Since(began); d < idle/2 {
		t.Fatalf("closed %v after its request, before the idle timeout %v", d, idle)
	}
	// The scrape's own connection is the only one left.
	deadline := time.Now().Add(readTimeout)
	for {
		v := metricValue(t, n, "tickfan_connections", "transport", "http")
		if v == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf(`tickfan_connections{transport="http"} = %v with only the scrape's connection open, want 1`, v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHTTPHeaderTooLarge: request headers past 16 KiB are answered 431;
// ordinary ones still pass.
func TestHTTPHeaderTooLarge(t *testing.T) {
	t.Parallel()
	n := start(t)
	for _, c := range []struct {
		size int
		want int
	}{{4 << 10, http.StatusOK}, {32 << 10, http.StatusRequestHeaderFieldsTooLarge}, {1 << 20, http.StatusRequestHeaderFieldsTooLarge}} {
		req, err := http.NewRequest(http.MethodGet, n.base+"/healthz", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Pad", strings.Repeat("a", c.size))
		r, err := doHTTP(req)
		if err != nil {
			if c.want != http.StatusOK && isReset(err) {
				continue // refused before the client finished writing
			}
			t.Fatalf("header of %d bytes: %v", c.size, err)
		}
		if r.status != c.want {
			t.Fatalf("header of %d bytes: status %d, want %d", c.size, r.status, c.want)
		}
	}
}

// TestHTTPSlowBodyCut: a publish body that trickles in, even with the right
// key, is cut at Config.HTTPReadTimeout: 408, and the connection closes.
func TestHTTPSlowBodyCut(t *testing.T) {
	t.Parallel()
	const readTO = time.Second
	n := start(t, func(c *server.Config) { c.HTTPReadTimeout = readTO })
	began := time.Now() // before the server's read deadline is set
	h := dialHTTP(t, n.srv.HTTPAddr())
	_, err := fmt.Fprintf(h.c, "POST /api/publish HTTP/1.1\r\nHost: tickfan\r\nAuthorization: apikey %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", apiKey)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // one byte of white space every 100 ms, for up to 10 s
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 100; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := h.c.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	_ = h.c.SetReadDeadline(time.Now().Add(readTO + 5*time.Second))
	resp, err := http.ReadResponse(h.r, nil)
	if err != nil {
		t.Fatalf("slow body: %v after %v, want a 408 answer", err, time.Since(began))
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(began)
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("slow body: status %d %s after %v, want 408", resp.StatusCode, body, took)
	}
	if took < readTO-100*time.Millisecond {
		t.Fatalf("slow body answered after %v, before the read timeout %v", took, readTO)
	}
	h.closedWithin(t, readTimeout)
}

// TestHTTPConnectionBudget: --max-conns bounds WebSocket, TCP and HTTP
// connections together. With 3 places held by clients, an HTTP connection
// is closed as accepted; with one held by an HTTP connection, a third
// client is refused with 4006; each place comes back when its holder goes.
func TestHTTPConnectionBudget(t *testing.T) {
	t.Parallel()
	n := start(t, func(c *server.Config) { c.MaxConns, c.MaxConnsPerIP = 3, -1 })
	clients := []*client{dialWS(t, n, protoJSON), dialWS(t, n, protoMsgpack), dialTCP(t, n)}
	for _, c := range clients {
		c.alive(t)
	}

	// Full with clients: HTTP is closed without an answer.
	over := dialHTTP(t, n.srv.HTTPAddr())
	if code, body, err := over.get("/healthz"); err == nil || isTimeout(err) {
		t.Fatalf("HTTP with 3 of 3 places held by clients: %d %s %v, want closed at once", code, body, err)
	}

	// A client leaves: its place serves HTTP.
	clients[0].close()
	refused := 1
	var h *rawHTTP
	for deadline := time.Now().Add(readTimeout); ; time.Sleep(20 * time.Millisecond) {
		h = dialHTTP(t, n.srv.HTTPAddr())
		code, _, err := h.get("/healthz")
		if err == nil && code == http.StatusOK {
			break
		}
		refused++
		if time.Now().After(deadline) {
			t.Fatalf("no HTTP place after a client left: %d %v", code, err)
		}
	}
	code, raw, err := h.get("/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	m := parseMetrics(t, raw)
	if v := m.sum("tickfan_rejected_connections_total", "reason", "max_conns"); v != float64(refused) {
		t.Errorf("rejected max_conns %v after %d HTTP connections refused, want %d", v, refused, refused)
	}
	if v := m.sum("tickfan_connections", "transport", "http"); v != 1 {
		t.Errorf(`tickfan_connections{transport="http"} = %v with one HTTP connection open, want 1`, v)
	}

	// Full with 2 clients and the HTTP connection: clients are refused.
	for _, c := range []*client{dialWS(t, n, protoJSON), dialTCP(t, n)} {
		msg, err := c.recv()
		if err != nil || msg["op"] != "close" || msg["code"] != int64(closeTooManyConns) {
			t.Fatalf("%s with 2 clients and 1 HTTP connection of 3 places: %v %v, want op close 4006", c.name, msg, err)
		}
		c.close()
	}

	// The HTTP connection leaves: its place serves a client.
	h.c.Close()
	waitAdmitted(t, n, "no place for a client after the HTTP connection left")
}
