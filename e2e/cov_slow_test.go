package e2e

import (
	"bufio"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tickfan/tickfan/server"
)

// smallRcvbuf is a dialer whose sockets get a receive buffer of a few KiB
// before they connect, so a client that stops reading backs the server up
// after little data, as a phone on a bad link does.
func smallRcvbuf() *net.Dialer {
	return &net.Dialer{Timeout: readTimeout, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}
}

// dialSmall dials like tr.dial, with a small receive buffer.
func dialSmall(t *testing.T, n *node, tr transport) *client {
	t.Helper()
	var cl *client
	switch tr.name {
	case "tcp":
		c, err := smallRcvbuf().Dial("tcp", n.srv.TCPAddr())
		if err != nil {
			t.Fatalf("dial tcp: %v", err)
		}
		cl = &client{name: "tcp", w: &tcpWire{c: c, r: bufio.NewReader(c)}, f: msgpackFormat}
	default:
		proto, typ, f := protoJSON, websocket.TextMessage, jsonFormat
		if tr.name == "ws-msgpack" {
			proto, typ, f = protoMsgpack, websocket.BinaryMessage, msgpackFormat
		}
		d := websocket.Dialer{HandshakeTimeout: readTimeout, Subprotocols: []string{proto}, NetDial: smallRcvbuf().Dial}
		c, _, err := d.Dial("ws://"+n.srv.WSAddr()+"/ws", nil)
		if err != nil {
			t.Fatalf("dial ws %s: %v", proto, err)
		}
		cl = &client{name: tr.name, w: &wsWire{c: c, typ: typ}, f: f}
	}
	t.Cleanup(cl.close)
	return cl
}

// TestSlowClientConflatedAndNormal stalls a client that holds a conflated
// topic (ticker.*, conflated by default) and a normal one at once, while
// both are published to until the server has told it lag. When it reads
// again: the normal topic comes in seq order with no gap up to its lag,
// whose s is the last seq delivered, then resumes from history at the next
// seq, with no action by the client, up to the last publication; the
// conflated topic never gets lag, its seqs only increase, each carries its
// own payload, and the newest publication arrives. Once it has read
// everything it is no longer slow; once it leaves, or a client leaves
// while it is slow, nothing of it is left in the gauges.
func TestSlowClientConflatedAndNormal(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr transport) {
		t.Parallel()
		n := start(t, historySize(1_000_000), func(c *server.Config) {
			c.OutboxBytes = 16 << 10
			c.SlowTimeout = 10 * time.Minute
		})
		check := healthy(t, n)
		suffix := strings.ReplaceAll(tr.name, "-", "")
		book, ticker := "book.mix."+suffix, "ticker.MIX"+suffix // ticker.* matches one segment
		c := dialSmall(t, n, tr)
		subs := c.sub(t, []string{book, ticker}, nil)
		if subs[book].S != 0 || subs[ticker].S != 0 {
			t.Fatalf("sub of fresh topics → %+v", subs)
		}

		// The client reads nothing while the producer publishes, until the
		// server has sent it lag (polled on /metrics), and a few batches
		// more after it.
		pad := strings.Repeat("p", 1000)
		var books, tickers int
		batch := func() {
			items := make([]map[string]any, 0, 60)
			for i := 0; i < 50; i++ {
				books++
				items = append(items, item(book, map[string]any{"i": books, "pad": pad}, false))
				if i%5 == 0 {
					tickers++
					items = append(items, item(ticker, map[string]any{"v": tickers}, false))
				}
			}
			n.publishBatch(t, items)
		}
		deadline := time.Now().Add(60 * time.Second)
		for metricValue(t, n, "tickfan_lags_total") == 0 {
			if time.Now().After(deadline) || books > 200_000 {
				t.Fatalf("no lag after %d publications to a client that reads nothing", books)
			}
			batch()
		}
		for i := 0; i < 3; i++ {
			batch()
		}
		t.Logf("%s: lag after %d publications of %s and %d of %s", tr.name, books, book, tickers, ticker)
		check()

		// Read it all.
		var lastBook, lastTicker uint64
		lags, tickerGot := 0, 0
		lagged := false
		for i := 0; lastBook != uint64(books) || lastTicker != uint64(tickers); i++ {
			m, err := c.recv()
			if err != nil {
				t.Fatalf("after %d messages (%s at %d, %d lags; %s at %d): %v", i, book, lastBook, lags, ticker, lastTicker, err)
			}
			if op, isOp := m["op"]; isOp {
				if op != "lag" || m["t"] != book {
					t.Fatalf("got %s: only %s may get lag, nothing else may come but publications", m, book)
				}
				if !hasKeys(m, "op", "t", "s") {
					t.Fatalf("lag %s, want exactly op, t and s", m)
				}
				if s, _ := asUint(m["s"]); s != lastBook || lagged {
					t.Fatalf("lag %s after %s s %d (lagged already: %v), want s %d once", m, book, lastBook, lagged, lastBook)
				}
				lags++
				lagged = true
				continue
			}
			p, err := asPub(m)
			if err != nil {
				t.Fatal(err)
			}
			d, _ := p.D.(map[string]any)
			switch p.T {
			case book:
				if p.S != lastBook+1 {
					t.Fatalf("%s s %d after %d (lagged: %v): want no gap and no repeat", book, p.S, lastBook, lagged)
				}
				if d["i"] != int64(p.S) {
					t.Fatalf("%s s %d carries %s", book, p.S, show(d))
				}
				lastBook, lagged = p.S, false
			case ticker:
				if p.S <= lastTicker {
					t.Fatalf("%s s %d after %d: a conflated topic's seq only increases", ticker, p.S, lastTicker)
				}
				if d["v"] != int64(p.S) {
					t.Fatalf("%s s %d carries %s", ticker, p.S, show(d))
				}
				lastTicker = p.S
				tickerGot++
			default:
				t.Fatalf("got %s", m)
			}
		}
		if lags == 0 {
			t.Fatalf("%s never got lag", book)
		}
		// Publications of it came while a frame of it waited unsent: the
		// newest replaced it.
		if tickerGot >= tickers {
			t.Fatalf("all %d publications of %s delivered to a stalled client: nothing was conflated", tickers, ticker)
		}
		t.Logf("%s: %d lags of %s; %d of %d publications of %s delivered", tr.name, lags, book, tickerGot, tickers, ticker)

		// Live again, on both topics.
		pb := n.publish(t, book, map[string]any{"i": books + 1}, false)
		pt := n.publish(t, ticker, map[string]any{"v": tickers + 1}, false)
		got := map[string]uint64{}
		for len(got) < 2 {
			m := c.next(t)
			p, err := asPub(m)
			if err != nil {
				t.Fatal(err)
			}
			got[p.T] = p.S
		}
		if got[book] != pb.S || got[ticker] != pt.S {
			t.Fatalf("live after the resume: got %v, want %s %d and %s %d", got, book, pb.S, ticker, pt.S)
		}
		waitMetric(t, n, 0, "tickfan_slow_clients")
		c.close()
		waitMetric(t, n, 1, "tickfan_subscriptions") // the healthy client's
		check()

		// A client that leaves while it is over the mark takes its place
		// in the gauges with it.
		stalled := dialSmall(t, n, tr)
		stalled.sub(t, []string{book, ticker}, nil)
		deadline = time.Now().Add(60 * time.Second)
		for metricValue(t, n, "tickfan_slow_clients") == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("a client that reads nothing is not slow after %d publications", books)
			}
			batch()
		}
		stalled.close()
		waitMetric(t, n, 0, "tickfan_slow_clients")
		waitMetric(t, n, 1, "tickfan_subscriptions")
		check()
	})
}
