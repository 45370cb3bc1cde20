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
		if err != nil || m["op"] != "close" || m["code"] != int64(closeTooManyConns) {
			t.Fatalf("%s over the limit: %v %v, want op close 4006", over.name, m, err)
		}
		if _, err := over.recv(); err == nil {
			t.Fatalf("%s over the limit still open after op close", over.name)
		}
		over.close() // else the server holds its place until its close linger ends
	}
	check()
	if v := metricValue(t, n, "tickfan_rejected_connections_total", "reason", "max_conns"); v != 2 {
		t.Fatalf("rejected max_conns metric %v, want 2", v)
	}
	// A place frees when a client leaves. A refused client that closes
	// its side frees its own place at once (the server holds a closing
	// connection until the client has read the close).
	a.close()
	waitAdmitted(t, n, "no place after a client left")
	check()
}

// admitted tells whether the server kept a new connection, from what it
// sends: a ping is sent, and the first message is either its reply (the
// connection is served) or op close 4006 (it was refused, and the closing
// server drops the ping unread). Anything else fails the test.
func admitted(t *testing.T, c *client) bool {
	t.Helper()
	id := c.id()
	// A refused connection may be closed by now: the close is read all the same.
	_ = c.send(map[string]any{"op": "ping", "id": id})
	m, err := c.recv()
	if err != nil {
		t.Fatalf("%s: %v, want the reply to a ping or op close 4006", c.name, err)
	}
	if checkOpClose(m, closeTooManyConns) == nil {
		if _, err := c.recv(); err == nil {
			t.Fatalf("%s: refused connection still open after op close", c.name)
		}
		return false
	}
	if err := checkReply(m, id); err != nil || !hasKeys(m, "id", "res") {
		t.Fatalf("%s: got %s, want the reply to ping %d or op close 4006", c.name, m, id)
	}
	return true
}

func TestConnectionsPerIP(t *testing.T) {
	t.Parallel()
	n := start(t, func(c *server.Config) { c.MaxConnsPerIP = 2 })
	check := healthy(t, n) // 1 from 127.0.0.1
	dialTCP(t, n).alive(t) // 2
	over := dialTCP(t, n)
	if m, err := over.recv(); err != nil || m["code"] != int64(closeTooManyConns) {
		t.Fatalf("third connection from one IP: %v %v, want op close 4006", m, err)
	}
	check()
	if v := metricValue(t, n, "tickfan_rejected_connections_total", "reason", "per_ip"); v != 1 {
		t.Fatalf("per_ip metric %v, want 1", v)
	}
}

func TestConnectionRatePerIP(t *testing.T) {
	t.Parallel()
	const rate, burst = 5, 12
	n := start(t, func(c *server.Config) { c.ConnRatePerIP = rate })
	// The server counts each address's connections per second of its
	// clock and refuses (4006) the 6th of a second. How many seconds a
	// burst spans depends on the machine, so the test asserts only what
	// holds at any speed: the first burst has at least 5 admitted (every
	// second admits its first 5); bursts go on until one connection is
	// refused (a slow machine needs more bursts, never fails); and no
	// burst has more than 5 admitted per second its connections could
	// have been counted in, taken from this side's clock from before the
	// first dial (less the slack by which the server's timer-wheel clock
	// may trail) to after the last answer. A slow burst spans more
	// seconds: the bound only loosens, it never fails a correct server.
	const clockSlack = 250 * time.Millisecond
	refused := 0
	for round := 0; refused == 0; round++ {
		if round == 10 {
			t.Fatalf("%d bursts of %d connections at %d/s, none refused", round, burst, rate)
		}
		began := time.Now()
		dialed := make([]*client, burst)
		for i := range dialed {
			dialed[i] = dialTCP(t, n)
		}
		in := 0
		for _, c := range dialed {
			if admitted(t, c) {
				in++
			} else {
				refused++
			}
		}
		seconds := time.Now().Unix() - began.Add(-clockSlack).Unix() + 1
		if in > rate*int(seconds) {
			t.Fatalf("burst %d: %d of %d admitted within %d s (by the wall clock) at %d/s", round, in, burst, seconds, rate)
		}
		if round == 0 && in < rate {
			t.Fatalf("first burst: %d of %d admitted at %d/s, want at least %d", in, burst, rate, rate)
		}
	}
	if v := metricValue(t, n, "tickfan_rejected_connections_total", "reason", "ip_rate"); v != float64(refused) {
		t.Fatalf("ip_rate metric %v, want %d", v, refused)
	}
}

func TestCommandRate(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr transport) {
		const rate = 20
		n := start(t, func(c *server.Config) { c.CmdRate = rate })
		check := healthy(t, n)
		c := tr.dial(t, n)
		// A burst of rate+extra pings, all sent before any reply is read,
		// so that the client's speed plays no part. The bucket starts
		// full: the first 20 are served at any speed. It refills one
		// token per 50 ms of the server's clock, so some of the last 10
		// get 429 unless that clock moved half a second while the server
		// handled 30 pings that came together. No bigger burst: more than
		// rate refusals in a row close the connection (4004), and the
		// wait for the refill below may be refused a few times more.
		const extra = rate / 2
		ids := make([]uint64, rate+extra)
		for i := range ids {
			ids[i] = c.id()
			c.mustSend(t, map[string]any{"op": "ping", "id": ids[i]})
		}
		refused := 0
		for i, id := range ids {
			m := c.next(t)
			if err := checkReply(m, id); err != nil {
				t.Fatalf("ping %d of a burst of %d: %v", i+1, len(ids), err)
			}
			if _, ok := m["res"]; ok {
				continue
			}
			if i < rate {
				t.Fatalf("ping %d of a burst of %d at %d/s: %s, want served", i+1, len(ids), rate, m)
			}
			if err := checkErr(m, 429); err != nil {
				t.Fatal(err)
			}
			refused++
		}
		if refused == 0 {
			t.Fatalf("%d pings at once at a %d/s limit: no 429", len(ids), rate)
		}
		// The budget comes back as the server's clock moves: a ping is
		// served again. One is sent every 50 ms (a token's refill); fewer
		// than 10 are refused unless the server's clock stood still for
		// half a second.
		for deadline := time.Now().Add(readTimeout); ; time.Sleep(50 * time.Millisecond) {
			m := c.do(t, map[string]any{"op": "ping"})
			if _, ok := m["res"]; ok {
				break
			}
			if err := checkErr(m, 429); err != nil {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("pings still refused %v after a burst at %d/s", readTimeout, rate)
			}
		}
		check()
		// Abuse: a client that keeps sending while refused is closed 4004.
		// 200 pings at once: past the 20 served, more than 20 refusals in
		// a row come unless the server's clock gains 50 ms (a token) for
		// every 21 pings it handles.
		const abuse = 200
		abuser := tr.dial(t, n)
		for i := 0; i < abuse; i++ {
			if err := abuser.send(map[string]any{"op": "ping", "id": i + 1}); err != nil {
				break
			}
		}
		closed := false
		for i := 0; i < abuse && !closed; i++ {
			m, err := abuser.recv()
			if err != nil {
				t.Fatalf("abuser: %v before op close 4004", err)
			}
			closed = m["op"] == "close" && m["code"] == int64(closeBadRequest)
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
	return n.metrics(t).sum(name, labels...)
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
	if err != nil || m["op"] != "close" || m["code"] != int64(closeTooManyConns) {
		t.Fatalf("4th connection from one address of 6 places: %v %v, want op close 4006", m, err)
	}
	if v := metricValue(t, n, "tickfan_rejected_connections_total", "reason", "per_ip"); v != 1 {
		t.Fatalf("rejected per_ip metric %v, want 1", v)
	}
}

// waitAdmitted dials TCP clients until one is admitted (answers a ping),
// closing the refused ones, and fails with why after a bounded wait.
func waitAdmitted(t *testing.T, n *node, why string) *client {
	t.Helper()
	for deadline := time.Now().Add(readTimeout); ; time.Sleep(20 * time.Millisecond) {
		c := dialTCP(t, n)
		if admitted(t, c) {
			return c
		}
		c.close()
		if time.Now().After(deadline) {
			t.Fatalf("%s: every new connection refused with op close 4006", why)
		}
	}
}
