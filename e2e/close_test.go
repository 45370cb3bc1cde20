package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tickfan/tickfan/server"
)

// The server closes so that the client reads the close code and then a
// clean end of stream, never a reset (PROTOCOL.md "Server to client"):
// closing a socket with unread input makes the kernel send RST, and a
// client's stack then drops the close unread. These tests give the server
// unread input at the moment it closes.

// rawConn is the client's socket under its framing.
func rawConn(c *client) net.Conn {
	switch w := c.w.(type) {
	case *wsWire:
		return w.c.NetConn()
	case *tcpWire:
		return w.c
	}
	panic("unknown wire")
}

// keepSending writes junk to nc until stop is closed, a write fails, or
// limit bytes are out; wait returns once it has stopped.
func keepSending(nc net.Conn, limit int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		chunk := make([]byte, 16<<10)
		for sent := 0; sent < limit; sent += len(chunk) {
			select {
			case <-done:
				return
			default:
			}
			_ = nc.SetWriteDeadline(time.Now().Add(readTimeout))
			if _, err := nc.Write(chunk); err != nil {
				return
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }); wg.Wait() }
}

// expectCleanEOF reads nc to its end and fails unless the end is EOF: a
// reset (or a timeout) means the server did not close cleanly.
func expectCleanEOF(t *testing.T, nc net.Conn) {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(readTimeout))
	_, err := io.Copy(io.Discard, nc)
	switch {
	case err == nil: // io.Copy reports EOF as nil
	case errors.Is(err, syscall.ECONNRESET):
		t.Fatalf("connection reset after the close: want a clean end of stream")
	default:
		t.Fatalf("after the close: %v, want a clean end of stream", err)
	}
}

// readToClose reads messages until the server's close and returns the
// last message before it and the WebSocket close code (0 over TCP). Over
// TCP the read that ends the stream must be a clean EOF.
func readToClose(t *testing.T, c *client) (last msg, wsCode int) {
	t.Helper()
	for i := 0; ; i++ {
		b, err := c.w.read(readTimeout)
		if err != nil {
			var ce *websocket.CloseError
			switch {
			case errors.As(err, &ce):
				return last, ce.Code
			case errors.Is(err, io.EOF) && c.name == "tcp":
				return last, 0
			}
			t.Fatalf("%s: read %d: %v (last message %s), want the close and a clean end", c.name, i, err, last)
		}
		v, err := c.f.unmarshal(b)
		if err != nil {
			t.Fatalf("%s: undecodable message: %v", c.name, err)
		}
		last, _ = v.(map[string]any)
	}
}

// TestCloseReadDespiteInput sends a message over --max-frame and keeps
// sending: the server must refuse it with its code (WebSocket 1009; TCP op
// close 4004) and the client must read that code and then a clean end.
func TestCloseReadDespiteInput(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	n := start(t, func(c *server.Config) { c.MaxFrame = limit })
	check := healthy(t, n)
	eachTransport(t, func(t *testing.T, tr transport) {
		for round := 0; round < 5; round++ { // a reset loses the race only now and then
			c := tr.dial(t, n)
			c.alive(t)
			nc := rawConn(c)
			var hdr []byte
			if tr.name == "tcp" {
				hdr = binary.BigEndian.AppendUint32(nil, 4*limit)
			} else {
				// A masked binary frame of 4*limit bytes (64-bit length).
				hdr = append([]byte{0x82, 0x80 | 127}, binary.BigEndian.AppendUint64(nil, 4*limit)...)
				hdr = append(hdr, 1, 2, 3, 4)
			}
			if _, err := nc.Write(hdr); err != nil {
				t.Fatal(err)
			}
			stop := keepSending(nc, 64<<20)
			last, code := readToClose(t, c)
			stop()
			if tr.name == "tcp" {
				if err := checkOpClose(last, closeBadRequest); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			} else if code != websocket.CloseMessageTooBig {
				t.Fatalf("round %d: close code %d, want %d", round, code, websocket.CloseMessageTooBig)
			}
			if tr.name != "tcp" {
				expectCleanEOF(t, nc)
			}
			c.close()
		}
	})
	check()
}

// TestSlowCloseReadAfterWrite: a client stops reading, is closed with 4005
// while the server still holds bytes for it, then writes (its write must
// not meet a reset) and reads: it gets everything up to the op close 4005
// (and the close frame 4005 over WebSocket), then a clean end.
func TestSlowCloseReadAfterWrite(t *testing.T) {
	t.Parallel()
	// A lagged client is fed from history a chunk (half the outbox) at a
	// time whenever its socket has taken everything: with a large outbox the
	// kernel's send buffer fills fast, and the client is over its mark for
	// good, also on a slow machine.
	n := start(t, func(c *server.Config) {
		c.OutboxBytes = 256 << 10
		c.SlowTimeout = 200 * time.Millisecond
	})
	check := healthy(t, n)
	eachTransport(t, func(t *testing.T, tr transport) {
		name := "slow.close." + strings.ReplaceAll(tr.name, "-", "")
		// A small receive buffer backs the server up after little data;
		// loopback's autotuned buffers would take megabytes first.
		c := dialSmall(t, n, tr)
		c.sub1(t, name, nil)
		before := metricValue(t, n, "tickfan_closes_total", "code", "4005")
		// Publish until the server has closed the client, which reads nothing.
		big := strings.Repeat("x", 4000)
		deadline := time.Now().Add(30 * time.Second)
		for metricValue(t, n, "tickfan_closes_total", "code", "4005") == before {
			if time.Now().After(deadline) {
				t.Fatal("the stalled client was not closed with 4005")
			}
			items := make([]map[string]any, 200)
			for i := range items {
				items[i] = map[string]any{"t": name, "d": big}
			}
			n.publishBatch(t, items)
		}
		if err := c.send(map[string]any{"op": "ping", "id": 1}); err != nil {
			t.Fatalf("a write after the close began: %v", err)
		}
		last, code := readToClose(t, c)
		if err := checkOpClose(last, closeSlowClient); err != nil {
			t.Fatal(err)
		}
		if tr.name != "tcp" {
			if code != closeSlowClient {
				t.Fatalf("close frame code %d, want %d", code, closeSlowClient)
			}
			expectCleanEOF(t, rawConn(c))
		}
	})
	check()
}

// TestDrainClosesEachClient: on drain every client reads op close 4007 (and
// the close frame over WebSocket) and a clean end, and the node is empty
// long before the drain timeout.
func TestDrainClosesEachClient(t *testing.T) {
	t.Parallel()
	n := start(t, func(c *server.Config) { c.DrainTimeout = time.Minute })
	var clients []*client
	for _, tr := range transports {
		c := tr.dial(t, n)
		c.sub1(t, "drain.each", nil)
		clients = append(clients, c)
	}
	// One client stops reading: its close must not wait for it forever.
	stalled := dialTCP(t, n)
	stalled.alive(t)
	done := make(chan struct{})
	go func() { n.srv.Drain(); close(done) }()
	for _, c := range clients {
		last, code := readToClose(t, c)
		if err := checkOpClose(last, closeServerDraining); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if c.name != "tcp" {
			if code != closeServerDraining {
				t.Fatalf("%s: close frame %d, want %d", c.name, code, closeServerDraining)
			}
			expectCleanEOF(t, rawConn(c))
		}
	}
	select {
	case <-done: // every connection closed: the stalled one within the close's linger
	case <-time.After(30 * time.Second):
		t.Fatal(fmt.Sprintf("Drain still waiting with %v", metricValue(t, n, "tickfan_connections")))
	}
	for _, tr := range []string{"ws", "tcp"} {
		if open := metricValue(t, n, "tickfan_connections", "transport", tr); open != 0 {
			t.Fatalf("%v %s connections open after Drain, want 0", open, tr)
		}
	}
}
