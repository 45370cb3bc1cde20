package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/tickfan/tickfan/server"
)

// healthy subscribes a client to a topic and returns a check that publishes
// a few publications and expects every one, in order: a rejection of a
// misbehaving client must cost a healthy one nothing.
func healthy(t *testing.T, n *node) func() {
	t.Helper()
	c := dialWS(t, n, protoJSON)
	const name = "book.HEALTHY"
	seq := c.sub1(t, name, nil).S
	return func() {
		t.Helper()
		for i := 0; i < 20; i++ {
			n.publish(t, name, payload("h", i), false)
		}
		for i := 0; i < 20; i++ {
			seq++
			c.nextPub(t, name, seq, payload("h", i), false)
		}
	}
}

func TestMaxConnections(t *testing.T) {
	t.Parallel()
	// --max-conns covers every listener: HTTP connections count too.
	n := start(t, func(c *server.Config) { c.MaxConns, c.MaxConnsPerIP = 4, -1 })
	check := healthy(t, n) // 1
	check()                // 2: the HTTP connection the checks keep alive
	a := dialTCP(t, n)     // 3
	a.alive(t)
	b := dialWS(t, n, protoMsgpack) // 4
	b.alive(t)
	for _, over := range []*client{dialTCP(t, n), dialWS(t, n, protoJSON)} {
		m, err := over.recv()
		if err != nil || m["op"] != "close" || m["code"] != int64(server.CloseTooManyConns) {
			t.Fatalf("%s over the limit: %v %v, want op close 4006", over.name, m, err)
		}
		if _, err := over.recv(); err == nil {
			t.Fatalf("%s over the limit still open after op close", over.name)
		}
	}
	check()
	if v := metricValue(t, n, "tickfan_rejected_connections_total", "reason", "max_conns"); v != 2 {
		t.Fatalf("rejected max_conns metric %v, want 2", v)
	}
	// A place frees when a client leaves. A refused client that closes
	// its side frees its own place at once (the server holds a closing
	// connection until the client has read the close).
	a.close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := dialTCP(t, n)
		m, err := c.recvWithin(300 * time.Millisecond)
		if err != nil && isTimeout(err) {
			c.alive(t) // no close came: admitted
			break
		}
		c.close()
		if time.Now().After(deadline) {
			t.Fatalf("no place after a client left: %v %v", m, err)
		}
	}
	check()
}

func TestConnectionsPerIP(t *testing.T) {
	t.Parallel()
	n := start(t, func(c *server.Config) { c.MaxConnsPerIP = 2 })
	check := healthy(t, n) // 1 from 127.0.0.1
	dialTCP(t, n).alive(t) // 2
	over := dialTCP(t, n)
	if m, err := over.recv(); err != nil || m["code"] != int64(server.CloseTooManyConns) {
		t.Fatalf("third connection from one IP: %v %v, want op close 4006", m, err)
	}
	check()
	if v := metricValue(t, n, "tickfan_rejected_connections_total", "reason", "per_ip"); v != 1 {
		t.Fatalf("per_ip metric %v, want 1", v)
	}
}

func TestConnectionRatePerIP(t *testing.T) {
	t.Parallel()
	n := start(t, func(c *server.Config) { c.ConnRatePerIP = 5 })
	// Dial in a burst; all inside one second (or two, at a boundary) so at
	// least one of 12 is refused.
	refused := 0
	var dialed, open []*client
	for i := 0; i < 12; i++ {
		dialed = append(dialed, dialTCP(t, n))
	}
	for _, c := range dialed {
		if m, err := c.recvWithin(200 * time.Millisecond); err == nil && m["code"] == int64(server.CloseTooManyConns) {
			refused++
			continue
		}
		open = append(open, c)
	}
	if refused == 0 || len(open) < 5 {
		t.Fatalf("12 connections in a burst at 5/s: %d refused, %d open", refused, len(open))
	}
	for _, c := range open {
		c.alive(t)
	}
	if v := metricValue(t, n, "tickfan_rejected_connections_total", "reason", "ip_rate"); v != float64(refused) {
		t.Fatalf("ip_rate metric %v, want %d", v, refused)
	}
}

func TestCommandRate(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr transport) {
		n := start(t, func(c *server.Config) { c.CmdRate = 20 })
		check := healthy(t, n)
		c := tr.dial(t, n)
		// A burst of 20 is allowed, then 429 with the id.
		got429 := false
		for i := 0; i < 40 && !got429; i++ {
			id := c.id()
			c.mustSend(t, map[string]any{"op": "ping", "id": id})
			m := c.next(t)
			if err := checkErr(m, 429); err == nil {
				if gotID, _ := asUint(m["id"]); gotID != id {
					t.Fatalf("429 reply %s does not echo id %d", m, id)
				}
				got429 = true
			}
		}
		if !got429 {
			t.Fatal("40 commands at once at a 20/s limit: no 429")
		}
		// After a pause the budget is back.
		time.Sleep(300 * time.Millisecond)
		c.alive(t)
		check()
		// Abuse: a client that keeps sending while refused is closed 4004.
		abuser := tr.dial(t, n)
		for i := 0; i < 100; i++ {
			if err := abuser.send(map[string]any{"op": "ping", "id": i + 1}); err != nil {
				break
			}
		}
		closed := false
		for i := 0; i < 100 && !closed; i++ {
			m, err := abuser.recv()
			if err != nil {
				t.Fatalf("abuser: %v before op close 4004", err)
			}
			closed = m["op"] == "close" && m["code"] == int64(server.CloseBadRequest)
		}
		if !closed {
			t.Fatal("abuser never got op close 4004")
		}
		check()
	})
}

func TestMaxSubsPerConnection(t *testing.T) {
	t.Parallel()
	n := start(t, func(c *server.Config) { c.MaxSubs = 3 })
	check := healthy(t, n)
	c := dialTCP(t, n)
	c.sub(t, []string{"a.1", "a.2"}, nil)
	c.fail(t, map[string]any{"op": "sub", "topics": []string{"a.3", "a.4"}}, 429)
	c.sub1(t, "a.3", nil) // exactly at the limit is fine
	c.fail(t, map[string]any{"op": "sub", "topics": []string{"a.4"}}, 429)
	c.ok(t, map[string]any{"op": "unsub", "topics": []string{"a.1"}})
	c.sub1(t, "a.4", nil)
	check()
}

func TestHTTPBodyLimit(t *testing.T) {
	t.Parallel()
	n := start(t, func(c *server.Config) { c.MaxBody = 4096 })
	check := healthy(t, n)
	big := map[string]any{"t": "book.X", "d": strings.Repeat("x", 5000)}
	r, err := n.post("/api/publish", "apikey "+apiKey, big)
	if err != nil {
		t.Fatal(err)
	}
	expectHTTPErr(t, "body over --max-body", r, 413)
	check()
}

// metricValue sums the samples of name with the given labels in the
// node's /metrics.
func metricValue(t *testing.T, n *node, name string, labels ...string) float64 {
	t.Helper()
	r, err := n.get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return parseMetrics(t, r.raw).sum(name, labels...)
}

// TestMsgpackPayloadWithContainerKeys publishes, over TCP msgpack, a d whose
// map keys are maps nested 60 deep. JSON subscribers would need it as JSON,
// where such keys have no form (quoting them level by level grows
// exponentially), so the server refuses it with 400 and serves on.
func TestMsgpackPayloadWithContainerKeys(t *testing.T) {
	t.Parallel()
	n := start(t)
	check := healthy(t, n)
	d := []byte{0x01}
	for i := 0; i < 60; i++ {
		d = append(append([]byte{0x81}, d...), 0x01) // {d: 1}: the previous map is the key
	}
	body, err := msgpack.Marshal(map[string]any{"op": "pub", "id": 1, "t": "book.KEYS", "d": msgpack.RawMessage(d)})
	if err != nil {
		t.Fatal(err)
	}
	c := dialTCP(t, n)
	c.mustSendRaw(t, body)
	if err := checkErr(c.next(t), 400); err != nil {
		t.Fatal(err)
	}
	c.alive(t)
	check()
}

// TestPerIPShareByDefault: with no per-IP flag, one address may hold at
// most half of --max-conns, so it can never take every place.
func TestPerIPShareByDefault(t *testing.T) {
	t.Parallel()
	n := start(t, func(c *server.Config) { c.MaxConns = 6 })
	for i := 0; i < 3; i++ {
		dialTCP(t, n).alive(t)
	}
	over := dialTCP(t, n)
	m, err := over.recv()
	if err != nil || m["op"] != "close" || m["code"] != int64(server.CloseTooManyConns) {
		t.Fatalf("4th connection from one address of 6 places: %v %v, want op close 4006", m, err)
	}
	if v := metricValue(t, n, "tickfan_rejected_connections_total", "reason", "per_ip"); v != 1 {
		t.Fatalf("rejected per_ip metric %v, want 1", v)
	}
}
