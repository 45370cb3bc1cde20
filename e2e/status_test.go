package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tickfan/tickfan/internal/redistest"
	"github.com/tickfan/tickfan/server"
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

// statusJSON is what GET /api/status answers, as far as the tests read it.
type statusJSON struct {
	Node struct {
		WS          string `json:"ws"`
		RequireAuth bool   `json:"require_auth"`
		OriginOK    bool   `json:"origin_ok"`
	} `json:"node"`
	Status struct {
		Subs      int `json:"subscriptions"`
		Topics    int `json:"topics"`
		TopicList struct {
			Hidden string `json:"hidden"`
			Top    []struct {
				T    string   `json:"t"`
				Subs int      `json:"subs"`
				S    uint64   `json:"s"`
				Rate *float64 `json:"rate"`
			} `json:"top"`
		} `json:"topic_list"`
		History struct {
			T []int64 `json:"t"`
		} `json:"history"`
	} `json:"status"`
}

// getStatus reads GET /api/status, raw and decoded.
func getStatus(t *testing.T, n *node) (statusJSON, string) {
	t.Helper()
	r, err := n.get("/api/status")
	if err != nil {
		t.Fatal(err)
	}
	if r.status != http.StatusOK {
		t.Fatalf("GET /api/status: %d %s", r.status, r.raw)
	}
	var st statusJSON
	if err := json.Unmarshal(r.raw, &st); err != nil {
		t.Fatalf("GET /api/status: %v in %s", err, r.raw)
	}
	return st, string(r.raw)
}

// TestStatusTopicsPublicOnly: the status data lists public topics with
// their subscribers and rates, and never names a private topic, not even
// one with subscribers (those rank first by subscribers).
func TestStatusTopicsPublicOnly(t *testing.T) {
	t.Parallel()
	n := start(t, withJWT)
	owner := dialWS(t, n, protoJSON)
	owner.ok(t, map[string]any{"op": "auth", "token": hsToken(t, jwt.MapClaims{"sub": "42", "exp": time.Now().Add(time.Hour).Unix()})})
	owner.sub1(t, "priv.orders.42", nil)
	reader := dialWS(t, n, protoJSON)
	reader.sub1(t, "book.pub", nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		n.publish(t, "priv.orders.42", map[string]any{"id": 1}, false)
		n.publish(t, "book.pub", map[string]any{"b": [][2]float64{{1, 2}}}, true)
		st, raw := getStatus(t, n)
		if strings.Contains(raw, "priv.") || strings.Contains(raw, "orders.42") {
			t.Fatalf("/api/status names a private topic:\n%s", raw)
		}
		for _, c := range []*client{owner, reader} {
			if a := c.w.(*wsWire).c.LocalAddr().String(); strings.Contains(raw, a) {
				t.Fatalf("/api/status names a client's address %s:\n%s", a, raw)
			}
		}
		if st.Status.Topics != 2 || st.Status.Subs != 2 {
			t.Fatalf("topics %d, subscriptions %d; want 2 and 2 (counts include private topics)", st.Status.Topics, st.Status.Subs)
		}
		var rate *float64
		for _, tp := range st.Status.TopicList.Top {
			if tp.T == "book.pub" {
				if tp.Subs != 1 || tp.S == 0 {
					t.Fatalf("book.pub listed with %d subscribers at seq %d, want 1 and more than 0", tp.Subs, tp.S)
				}
				rate = tp.Rate
			}
		}
		if rate != nil && *rate > 0 {
			break // listed, with its publication rate
		}
		if time.Now().After(deadline) {
			t.Fatalf("book.pub not listed with a rate within 10 s:\n%s", raw)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestStatusRequireAuthNamesNoTopic: with --require-auth an anonymous
// client may read no topic, so the status data names none (its counts stay).
func TestStatusRequireAuthNamesNoTopic(t *testing.T) {
	t.Parallel()
	n := start(t, withJWT, func(c *server.Config) { c.RequireAuth = true })
	n.publish(t, "book.open", map[string]any{"b": [][2]float64{{1, 2}}}, true)
	deadline := time.Now().Add(5 * time.Second)
	for { // the counts are a sample's, up to a second old
		st, raw := getStatus(t, n)
		if strings.Contains(raw, "book.open") || len(st.Status.TopicList.Top) != 0 || st.Status.TopicList.Hidden == "" || !st.Node.RequireAuth {
			t.Fatalf("with --require-auth /api/status names topics or does not say why it names none:\n%s", raw)
		}
		if st.Status.Topics == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("topics %d after 5 s, want 1", st.Status.Topics)
		}
		time.Sleep(200 * time.Millisecond)
	}
	s := openStream(t, n)
	for range 2 {
		if ev, data := s.next(t); strings.Contains(data, "book.open") {
			t.Fatalf("stream event %s names a topic: %s", ev, data)
		}
	}
}

// TestStatusPageOff: --status-page=false takes the page and its data
// away (404); the metrics and the health checks stay.
func TestStatusPageOff(t *testing.T) {
	t.Parallel()
	n := start(t, func(c *server.Config) { c.StatusPageOff = true })
	for path, want := range map[string]int{
		"/": http.StatusNotFound, "/api/status": http.StatusNotFound, "/api/status/stream": http.StatusNotFound,
		"/metrics": http.StatusOK, "/healthz": http.StatusOK, "/readyz": http.StatusOK,
	} {
		r, err := n.get(path)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != want {
			t.Errorf("GET %s: %d, want %d", path, r.status, want)
		}
	}
}

// statusStream is an open GET /api/status/stream.
type statusStream struct {
	resp *http.Response
	r    *bufio.Reader
}

// openStream opens the status stream; it is closed when the test ends.
func openStream(t *testing.T, n *node) *statusStream {
	t.Helper()
	resp, err := streamClient.Get(n.base + "/api/status/stream")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /api/status/stream: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return &statusStream{resp: resp, r: bufio.NewReader(resp.Body)}
}

// streamClient reads streams: no overall timeout (next bounds each read).
var streamClient = &http.Client{Transport: &http.Transport{Proxy: nil}}

// next reads one event, failing the test past 5 s or at the stream's end.
func (s *statusStream) next(t *testing.T) (event, data string) {
	t.Helper()
	type ev struct{ event, data string }
	got := make(chan ev, 1)
	errc := make(chan error, 1)
	go func() {
		var e ev
		for {
			line, err := s.r.ReadString('\n')
			if err != nil {
				errc <- err
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "" && e.event != "":
				got <- e
				return
			case strings.HasPrefix(line, "event: "):
				e.event = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				e.data = line[len("data: "):]
			}
		}
	}()
	select {
	case e := <-got:
		return e.event, e.data
	case err := <-errc:
		t.Fatalf("status stream: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("status stream: no event within 5 s")
	}
	return "", ""
}

// TestStatusStream: the stream starts with the node and a snapshot with
// its history, then a snapshot a second; it outlives the HTTP read
// timeout; past the limit of streams a page is told 503; a drain ends it.
func TestStatusStream(t *testing.T) {
	t.Parallel()
	n := start(t, func(c *server.Config) { c.HTTPReadTimeout = time.Second })
	s := openStream(t, n)
	if ev, data := s.next(t); ev != "node" || !strings.Contains(data, `"ws":"ws://`+n.srv.WSAddr()+`/ws"`) {
		t.Fatalf("first event %s %s, want node with the WebSocket address", ev, data)
	}
	if ev, data := s.next(t); ev != "status" || !strings.Contains(data, `"history":{"t":[`) {
		t.Fatalf("second event %s %.200s, want status with history", ev, data)
	}
	began := time.Now()
	for time.Since(began) < 2500*time.Millisecond { // past --http-read-timeout 1s
		if ev, data := s.next(t); ev != "status" || strings.Contains(data, `"history"`) {
			t.Fatalf("event %s %.200s, want status without history", ev, data)
		}
	}

	var more []*statusStream
	for len(more) < 15 { // 16 with s
		more = append(more, openStream(t, n))
	}
	r, err := n.get("/api/status/stream")
	if err != nil {
		t.Fatal(err)
	}
	expectHTTPErr(t, "17th stream", r, http.StatusServiceUnavailable)
	if !strings.Contains(string(r.raw), "status pages are streaming") {
		t.Fatalf("17th stream refused with %s, want the reason", r.raw)
	}
	_ = more[0].resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := streamClient.Get(n.base + "/api/status/stream")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a stream closed, yet a new one still gets %d", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}

	go n.srv.Drain()
	for {
		ev, _ := s.next(t)
		if ev == "end" {
			break
		}
	}
	if _, err := s.r.ReadString('\n'); err != io.EOF {
		t.Fatalf("after end the stream read %v, want its end", err)
	}
}

// TestStatusRedis: with --redis the status data says whether Redis is up
// and how many subscription connections are, and shows it going down.
func TestStatusRedis(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	n := redisNode(t, r.Addr)
	n.waitReady(t)
	type redisState struct {
		Status struct {
			Redis *struct {
				Up       bool `json:"up"`
				ShardsUp int  `json:"shards_up"`
				Shards   int  `json:"shards"`
			} `json:"redis"`
		} `json:"status"`
	}
	read := func() (redisState, string) {
		_, raw := getStatus(t, n)
		var st redisState
		if err := json.Unmarshal([]byte(raw), &st); err != nil || st.Status.Redis == nil {
			t.Fatalf("/api/status without redis: %v %s", err, raw)
		}
		if strings.Contains(raw, r.Addr) {
			t.Fatalf("/api/status names Redis's address:\n%s", raw)
		}
		return st, raw
	}
	pollUntil(t, "redis up in /api/status", func() (bool, string) {
		st, raw := read()
		rs := st.Status.Redis
		return rs.Up && rs.Shards == 1 && rs.ShardsUp == 1, raw
	})
	r.Kill()
	pollUntil(t, "redis down in /api/status", func() (bool, string) {
		st, raw := read()
		return !st.Status.Redis.Up, raw
	})
}

// TestStatusRecentCloses: a connection closed with 4004 shows in the
// closes of the last minute, under its code and meaning.
func TestStatusRecentCloses(t *testing.T) {
	t.Parallel()
	n := start(t)
	c := dialConn(t, "tcp", n.srv.TCPAddr())
	if _, err := c.Write([]byte{0, 0, 0, 0}); err != nil { // a frame of length 0: 4004
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, c) // until the server closes
	type closes struct {
		Status struct {
			Closes []struct {
				Code    int    `json:"code"`
				Meaning string `json:"meaning"`
				Recent  int    `json:"recent"`
			} `json:"closes"`
		} `json:"status"`
	}
	pollUntil(t, "4004 among the recent closes", func() (bool, string) {
		_, raw := getStatus(t, n)
		var st closes
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			t.Fatal(err)
		}
		for _, cl := range st.Status.Closes {
			if cl.Code == 4004 {
				return cl.Recent == 1 && cl.Meaning == "bad request", raw
			}
		}
		return false, raw
	})
}
