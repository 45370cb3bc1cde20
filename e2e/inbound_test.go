package e2e

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/tickfan/tickfan/server"
)

// Half-sent messages must not hold the server's memory: an anonymous
// client gets a small frame limit, a started message must be finished
// within --message-timeout, and all unfinished input together is bounded
// by --inbound-bytes.

// TestAnonMaxFrame: a connection without a token may not send a message
// over --anon-max-frame (TCP: op close 4004 on the length prefix alone;
// WebSocket: close 1009 on the frame header), while an authenticated one
// may send up to --max-frame.
func TestAnonMaxFrame(t *testing.T) {
	t.Parallel()
	n := start(t, withJWT, func(c *server.Config) { c.AnonMaxFrame = 4 << 10 })
	check := healthy(t, n)
	eachTransport(t, func(t *testing.T, tr transport) {
		c := tr.dial(t, n)
		c.alive(t)
		nc := rawConn(c)
		if tr.name == "tcp" {
			_, _ = nc.Write(binary.BigEndian.AppendUint32(nil, 8<<10))
		} else {
			hdr := append([]byte{0x82, 0x80 | 126}, binary.BigEndian.AppendUint16(nil, 8<<10)...)
			_, _ = nc.Write(append(hdr, 1, 2, 3, 4))
		}
		last, code := readToClose(t, c)
		if tr.name == "tcp" {
			if err := checkOpClose(last, closeBadRequest); err != nil {
				t.Fatal(err)
			}
		} else if code != 1009 {
			t.Fatalf("close %d, want 1009", code)
		}
		// With a token the same message is served.
		a := tr.dial(t, n)
		a.ok(t, map[string]any{"op": "auth", "token": hsToken(t, map[string]any{
			"sub": "big", "exp": time.Now().Add(time.Hour).Unix(), "pub": []string{"big.>"}})})
		d := make([]byte, 8<<10)
		for i := range d {
			d[i] = 'a'
		}
		a.pub(t, "big.msg", string(d), false)
	})
	check()
}

// TestMessageTimeout: a client that starts a message and never finishes it
// is closed with 4004 after --message-timeout, even while it keeps the
// connection alive (WebSocket pings; over TCP a byte at a time).
func TestMessageTimeout(t *testing.T) {
	t.Parallel()
	n := start(t, func(c *server.Config) { c.MessageTimeout = 300 * time.Millisecond })
	check := healthy(t, n)
	eachTransport(t, func(t *testing.T, tr transport) {
		c := tr.dial(t, n)
		c.alive(t)
		nc := rawConn(c)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { // keep the connection alive until the close comes
			defer close(done)
			if tr.name == "tcp" {
				_, _ = nc.Write(binary.BigEndian.AppendUint32(nil, 1000))
			} else {
				// A text frame without FIN: a fragmented message begun.
				_, _ = nc.Write([]byte{0x01, 0x80 | 2, 0, 0, 0, 0, '{', '"'})
			}
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				var err error
				if tr.name == "tcp" {
					_, err = nc.Write([]byte{' '})
				} else {
					_, err = nc.Write([]byte{0x89, 0x80, 0, 0, 0, 0}) // ping
				}
				if err != nil {
					return
				}
			}
		}()
		last, code := readToClose(t, c)
		close(stop)
		<-done
		if err := checkOpClose(last, closeBadRequest); err != nil {
			t.Fatal(err)
		}
		if tr.name != "tcp" && code != closeBadRequest {
			t.Fatalf("close frame %d, want %d", code, closeBadRequest)
		}
	})
	check()
}

// TestInboundBudget: unfinished messages of all connections together may
// hold at most --inbound-bytes; the connection whose message passes it is
// closed with 4004, the others and a healthy subscriber are served, and
// the bytes are given back when connections close.
func TestInboundBudget(t *testing.T) {
	t.Parallel()
	const budget, announced, sent = 100 << 10, 60 << 10, 40 << 10
	n := start(t, func(c *server.Config) {
		c.InboundBytes = budget
		c.AnonMaxFrame = 64 << 10
		c.MessageTimeout = time.Minute
	})
	check := healthy(t, n)
	conns := make([]*client, 4)
	frames := make([][]byte, len(conns))
	ids := make([]uint64, len(conns))
	for i := range conns {
		c := dialTCP(t, n)
		c.alive(t)
		// Announce 60 KiB and send 40 KiB of it: a ping padded to that
		// size, so that a connection still open answers it once its
		// message is finished.
		ids[i] = c.id()
		frames[i] = binary.BigEndian.AppendUint32(nil, announced)
		frames[i] = append(frames[i], sizedPing(t, c, ids[i], announced)...)
		if _, err := rawConn(c).Write(frames[i][:4+sent]); err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	deadline := time.Now().Add(readTimeout)
	for metricValue(t, n, "tickfan_inbound_bytes") == 0 || metricValue(t, n, "tickfan_inbound_budget_closes_total") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("inbound %v, budget closes %v: want the budget to refuse one of 4 x 40 KiB under 100 KiB",
				metricValue(t, n, "tickfan_inbound_bytes"), metricValue(t, n, "tickfan_inbound_budget_closes_total"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if held := metricValue(t, n, "tickfan_inbound_bytes"); held > budget {
		t.Fatalf("%v bytes held, over the budget of 100 KiB", held)
	}
	// Which ones were closed: a goroutine per connection reads its first
	// message. Those the server closed send op close 4004; as many of
	// them as the metric counts are read. The others have a message half
	// sent, so no ping can go on them: they are sent the rest of their
	// message, and a connection still open answers it.
	type first struct {
		i   int
		m   msg
		err error
	}
	firsts := make(chan first, len(conns))
	for i, c := range conns {
		go func() {
			m, err := c.recvWithin(2 * readTimeout) // bounds the whole classification
			firsts <- first{i, m, err}
		}()
	}
	got := make(map[int]msg)
	closed := 0
	take := func(what string) {
		t.Helper()
		select {
		case r := <-firsts:
			if r.err != nil {
				t.Fatalf("connection %d: %v, want op close 4004 or the reply to its ping", r.i, r.err)
			}
			if checkOpClose(r.m, closeBadRequest) == nil {
				closed++
			} else if err := checkReply(r.m, ids[r.i]); err != nil || !hasKeys(r.m, "id", "res") {
				t.Fatalf("connection %d: got %s, want op close 4004 or the reply to ping %d", r.i, r.m, ids[r.i])
			}
			got[r.i] = r.m
		case <-time.After(readTimeout):
			t.Fatalf("%s: nothing in %v (%d op closes read)", what, readTimeout, closed)
		}
	}
	for closed < int(metricValue(t, n, "tickfan_inbound_budget_closes_total")) {
		take("waiting for the op closes the metric counts")
	}
	for i, c := range conns {
		if got[i] != nil {
			continue
		}
		if _, err := rawConn(c).Write(frames[i][4+sent:]); err != nil {
			t.Fatalf("connection %d, open by the metric: %v", i, err)
		}
		for got[i] == nil {
			take(fmt.Sprintf("connection %d finished its message", i))
		}
	}
	if closed == 0 || closed == len(conns) {
		t.Fatalf("%d of %d connections closed, want some but not all", closed, len(conns))
	}
	if v := metricValue(t, n, "tickfan_inbound_budget_closes_total"); v != float64(closed) {
		t.Fatalf("tickfan_inbound_budget_closes_total %v, %d op closes read", v, closed)
	}
	for i, c := range conns {
		if got[i]["op"] == "close" {
			readToClose(t, c) // then a clean end of stream
		}
	}
	check()
	for _, c := range conns {
		c.close()
	}
	for deadline := time.Now().Add(readTimeout); metricValue(t, n, "tickfan_inbound_bytes") != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%v inbound bytes still held after every client left", metricValue(t, n, "tickfan_inbound_bytes"))
		}
	}
}

// sizedPing is a ping command of exactly size bytes in c's format: an
// extra key the server ignores carries the padding.
func sizedPing(t *testing.T, c *client, id uint64, size int) []byte {
	t.Helper()
	pad := size - 64
	for range 3 {
		b, err := c.f.marshal(map[string]any{"op": "ping", "id": id, "pad": make([]byte, pad)})
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == size {
			return b
		}
		pad += size - len(b)
	}
	t.Fatalf("no ping of %d bytes", size)
	return nil
}

// TestMessageTimeoutPerMessage: the deadline is per message. A client that
// streams commands whose every write ends in the middle of the next one
// (each finished well within the timeout) is served for many timeouts.
func TestMessageTimeoutPerMessage(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	n := start(t, func(c *server.Config) { c.MessageTimeout = timeout })
	c := dialTCP(t, n)
	nc := rawConn(c)
	const count = 100 // 100 x 30 ms: three timeouts
	var stream []byte
	for i := 1; i <= count; i++ {
		body, err := c.f.marshal(map[string]any{"op": "ping", "id": i})
		if err != nil {
			t.Fatal(err)
		}
		stream = append(binary.BigEndian.AppendUint32(stream, uint32(len(body))), body...)
	}
	frame := len(stream) / count
	go func() {
		// Each write carries the end of one command and the start of the
		// next, so every read leaves a message unfinished.
		for off := 0; off < len(stream); {
			end := min(off+frame, len(stream))
			if off == 0 {
				end = frame / 2
			}
			if _, err := nc.Write(stream[off:end]); err != nil {
				return
			}
			off = end
			time.Sleep(30 * time.Millisecond)
		}
	}()
	for i := 1; i <= count; i++ {
		m := c.next(t)
		if err := checkReply(m, uint64(i)); err != nil {
			t.Fatalf("ping %d of %d: %v", i, count, err)
		}
	}
}
