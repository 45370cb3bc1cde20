package e2e

import (
	"testing"
	"time"

	"github.com/tickfan/tickfan/server"
)

// TestTCPHeartbeatAndIdle checks the TCP side of PROTOCOL.md "Heartbeats":
// the server sends {"op":"ping"} without id every heartbeat interval, a
// client command counts as life, and a client silent for the idle timeout
// gets {"op":"close","code":4001} and is closed.
func TestTCPHeartbeatAndIdle(t *testing.T) {
	t.Parallel()
	const heartbeat, idle = 100 * time.Millisecond, time.Second
	// The server's timer-wheel clock may trail this side's by a tick or
	// two (10 ms each), more while its goroutine waits for a CPU.
	const clockSlack = heartbeat
	n := start(t, func(c *server.Config) {
		c.Heartbeat = heartbeat
		c.IdleTimeout = idle
	})
	began := time.Now()
	c := dialTCP(t, n)
	var lastSent time.Time
	sent, answered, pings := 0, 0, 0
	send := func() {
		lastSent = time.Now()
		c.mustSend(t, map[string]any{"op": "ping", "id": c.id()})
		sent++
	}
	// Talk: answer every server ping with a command (never a ping is
	// left unanswered, so the pace is the server's), until the connection
	// has lived half an idle timeout past the idle timeout. An op close
	// meanwhile fails the test: a command must count as life. If the
	// server stopped pinging, the client would fall silent and be closed.
	send()
	for answered < sent || time.Since(began) < idle+idle/2 {
		m := c.next(t)
		if m["op"] != "ping" {
			if err := checkReply(m, uint64(answered+1)); err != nil || !hasKeys(m, "id", "res") {
				t.Fatalf("got %s after %v, want a server ping or the reply to ping %d", m, time.Since(began), answered+1)
			}
			answered++
			continue
		}
		if _, hasID := m["id"]; hasID || len(m) != 1 {
			t.Fatalf("server ping %s, want exactly {\"op\":\"ping\"}", m)
		}
		pings++
		// Never early: the server's nth ping is due n heartbeats after
		// the connection opened.
		if el := time.Since(began); el < time.Duration(pings)*heartbeat-clockSlack {
			t.Fatalf("server ping %d %v after connecting, at a %v heartbeat", pings, el, heartbeat)
		}
		send()
	}
	// Now fall silent: pings go on, then close 4001, not before the idle
	// timeout has passed since the last command.
	for {
		m, err := c.recv()
		if err != nil {
			t.Fatalf("connection ended without op close 4001: %v", err)
		}
		if m["op"] == "ping" {
			if el := time.Since(lastSent); el > idle+readTimeout {
				t.Fatalf("still open %v after the last command, idle timeout %v", el, idle)
			}
			continue
		}
		if err := checkOpClose(m, closeIdle); err != nil {
			t.Fatal(err)
		}
		break
	}
	if el := time.Since(lastSent); el < idle-clockSlack {
		t.Fatalf("closed %v after the last command, before the idle timeout %v", el, idle)
	}
	if _, err := c.recv(); err == nil {
		t.Fatal("connection still open after op close")
	}
}
