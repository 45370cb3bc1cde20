package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/tickfan/tickfan/server"
)

// apiKey authorises HTTP publishing on every test server.
const apiKey = "k"

// engine is the reactor every test server runs on: TICKFAN_ENGINE, or
// the default (gnet). scripts/test runs this suite once per engine.
var engine = os.Getenv("TICKFAN_ENGINE")

// node is one running server and how to reach its HTTP API.
type node struct {
	srv  *server.Server
	base string // http://host:port
}

// start runs a real server on 127.0.0.1 ports the OS picks, with the given
// changes to the test defaults, and shuts it down when the test ends.
func start(t testing.TB, opts ...func(*server.Config)) *node {
	t.Helper()
	cfg := server.Config{
		WSAddr:       "127.0.0.1:0",
		TCPAddr:      "127.0.0.1:0",
		HTTPAddr:     "127.0.0.1:0",
		APIKey:       apiKey,
		AnonymousPub: ">",
		Loops:        2,
		// Tests send commands as fast as they can; TestCommandRate checks the limit.
		CmdRate: 1_000_000,
		// No heartbeat or idle close in the few seconds a test lasts.
		Heartbeat:   time.Minute,
		IdleTimeout: 5 * time.Minute,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Engine:      engine,
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("server.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("server.Shutdown: %v", err)
		}
	})
	return &node{srv: srv, base: "http://" + srv.HTTPAddr()}
}

func historySize(n int) func(*server.Config) {
	return func(c *server.Config) { c.HistorySize = n }
}

// httpResult is an HTTP answer with its JSON body decoded and normalized.
type httpResult struct {
	status int
	body   any
	raw    []byte
}

// post sends body (marshalled to JSON unless it is []byte) to path with
// the given Authorization header ("" for none).
func (n *node) post(path, auth string, body any) (httpResult, error) {
	b, ok := body.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return httpResult{}, err
		}
	}
	req, err := http.NewRequest(http.MethodPost, n.base+path, bytes.NewReader(b))
	if err != nil {
		return httpResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return doHTTP(req)
}

func (n *node) get(path string) (httpResult, error) {
	req, err := http.NewRequest(http.MethodGet, n.base+path, nil)
	if err != nil {
		return httpResult{}, err
	}
	return doHTTP(req)
}

func doHTTP(req *http.Request) (httpResult, error) {
	resp, err := httpClient.Do(req)
	if err != nil {
		return httpResult{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return httpResult{}, fmt.Errorf("%s %s: body: %w", req.Method, req.URL.Path, err)
	}
	r := httpResult{status: resp.StatusCode, raw: raw}
	if v, err := decodeJSON(raw); err == nil {
		r.body = v
	}
	return r, nil
}

// publishBody posts a publish request with the right key and returns the
// answer, failing the test on a transport error only.
func (n *node) publishBody(t testing.TB, body any) httpResult {
	t.Helper()
	r, err := n.post("/api/publish", "apikey "+apiKey, body)
	if err != nil {
		t.Fatalf("POST /api/publish: %v", err)
	}
	return r
}

// item is one publication in an HTTP publish body.
func item(name string, d any, snap bool) map[string]any {
	m := map[string]any{"t": name, "d": d}
	if snap {
		m["k"] = "snap"
	}
	return m
}

// publish publishes one publication over HTTP and returns its position.
func (n *node) publish(t testing.TB, name string, d any, snap bool) pos {
	t.Helper()
	p, err := n.tryPublish(name, d, snap)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (n *node) tryPublish(name string, d any, snap bool) (pos, error) {
	r, err := n.post("/api/publish", "apikey "+apiKey, item(name, d, snap))
	if err != nil {
		return pos{}, fmt.Errorf("POST /api/publish: %w", err)
	}
	if r.status != http.StatusOK {
		return pos{}, fmt.Errorf("publish %s: status %d %s, want 200", name, r.status, r.raw)
	}
	p, err := asPos(r.body)
	if err != nil {
		return pos{}, fmt.Errorf("publish %s: answer %s: %w", name, r.raw, err)
	}
	return p, nil
}

// publishBatch publishes items in one batch and returns their positions.
func (n *node) publishBatch(t testing.TB, items []map[string]any) []pos {
	t.Helper()
	ps, err := n.tryPublishBatch(items)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func (n *node) tryPublishBatch(items []map[string]any) ([]pos, error) {
	r, err := n.post("/api/publish", "apikey "+apiKey, map[string]any{"batch": items})
	if err != nil {
		return nil, fmt.Errorf("POST /api/publish: %w", err)
	}
	if r.status != http.StatusOK {
		return nil, fmt.Errorf("batch of %d: status %d %s, want 200", len(items), r.status, r.raw)
	}
	body, ok := r.body.(map[string]any)
	if !ok || !hasKeys(body, "results") {
		return nil, fmt.Errorf("batch answer %s, want {\"results\":[...]}", r.raw)
	}
	list, ok := body["results"].([]any)
	if !ok || len(list) != len(items) {
		return nil, fmt.Errorf("batch of %d: answer %s, want %d results", len(items), r.raw, len(items))
	}
	ps := make([]pos, len(list))
	for i, v := range list {
		if ps[i], err = asPos(v); err != nil {
			return nil, fmt.Errorf("batch result %d: %w", i, err)
		}
	}
	return ps, nil
}

// current returns a topic's position as a fresh subscriber sees it, on a
// connection of its own that is closed at once.
func (n *node) current(t testing.TB, name string) pos {
	t.Helper()
	c := dialTCP(t, n)
	defer c.close()
	return c.sub1(t, name, nil).pos
}

// expectHTTPErr checks an HTTP error answer: the status and a body of
// exactly {"err":{"code":status,"msg":".."}}.
func expectHTTPErr(t testing.TB, what string, r httpResult, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d %s, want %d", what, r.status, r.raw, status)
	}
	m, ok := r.body.(map[string]any)
	if !ok || !hasKeys(m, "err") {
		t.Fatalf("%s: body %q, want {\"err\":{\"code\":%d,\"msg\":..}}", what, r.raw, status)
	}
	if err := checkErr(msg(m), status); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestListenerAddrs starts servers with every listener on "127.0.0.1:0",
// as an operator or a test would, and checks each address reports its own
// listener: a WebSocket client on WSAddr() and a TCP client on TCPAddr()
// are both served. Several servers, since a wrong pick may be random.
func TestListenerAddrs(t *testing.T) {
	t.Parallel()
	for i := range 6 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			n := start(t)
			ws, tcp, web := n.srv.WSAddr(), n.srv.TCPAddr(), n.srv.HTTPAddr()
			if ws == tcp || ws == web || tcp == web {
				t.Fatalf("WSAddr %s, TCPAddr %s, HTTPAddr %s: each listener must report its own port", ws, tcp, web)
			}
			dialWS(t, n, protoJSON).alive(t)
			dialTCP(t, n).alive(t)
		})
	}
}
