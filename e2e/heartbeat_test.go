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
	n := start(t, func(c *server.Config) {
		c.Heartbeat = 100 * time.Millisecond
		c.IdleTimeout = 500 * time.Millisecond
	})
	c := dialTCP(t, n)
	start := time.Now()
	pings := 0
	var lastSent time.Time
	// Talk for a while: answer nothing, but send a command every 200ms so
	// the idle timeout keeps moving.
	for time.Since(start) < 800*time.Millisecond {
		lastSent = time.Now()
		c.mustSend(t, map[string]any{"op": "ping", "id": c.id()})
		for {
			m := c.next(t)
			if m["op"] == "ping" {
				if _, hasID := m["id"]; hasID || len(m) != 1 {
					t.Fatalf("server ping %s, want exactly {\"op\":\"ping\"}", m)
				}
				pings++
				continue
			}
			if _, ok := m["res"]; !ok {
				t.Fatalf("got %s, want a server ping or the ping reply", m)
			}
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if pings < 3 {
		t.Fatalf("%d server pings in 800ms at a 100ms heartbeat", pings)
	}
	// Now fall silent: pings go on, then close 4001.
	for {
		m, err := c.recv()
		if err != nil {
			t.Fatalf("connection ended without op close 4001: %v", err)
		}
		if m["op"] == "ping" {
			continue
		}
		if m["op"] != "close" || m["code"] != int64(server.CloseIdle) {
			t.Fatalf("got %s, want op close 4001", m)
		}
		break
	}
	// The wheel's clock may trail by a tick or two (10 ms each).
	if el := time.Since(lastSent); el < 450*time.Millisecond {
		t.Fatalf("closed %v after the last command, before the idle timeout", el)
	}
	if _, err := c.recv(); err == nil {
		t.Fatal("connection still open after op close")
	}
}
