package e2e

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/vmihailenco/msgpack/v5"
)

// TestRepliesBoundedByOutbox attacks a tickfan process with anonymous
// clients that send commands and never read: pulls of a whole 1 MB history
// over TCP and WebSocket, and WebSocket pings. Everything queued for a
// client (publications, replies, pongs) counts in its outbox budget; over
// it, its commands wait unread, so the server's memory stays under a bound
// derived from its flags, and a healthy subscriber misses nothing.
func TestRepliesBoundedByOutbox(t *testing.T) {
	const outbox = 256 << 10
	p := startProc(t, "--outbox-bytes", fmt.Sprint(outbox), "--history-size", "1000",
		"--slow-timeout", "1m", "--cmd-rate", "100000")
	// 1,000 publications of 1 KB in the attacked topic's history.
	d := strings.Repeat("x", 1000)
	var items []string
	for i := 0; i < 1000; i++ {
		items = append(items, fmt.Sprintf(`{"t":"hist.big","d":%q}`, d))
	}
	p.publishBatch(t, []byte(`{"batch":[`+strings.Join(items, ",")+`]}`))
	var first map[string]any
	{
		ws := wsDial(t, p.ws, 0)
		_ = ws.WriteJSON(map[string]any{"op": "sub", "id": 1, "topics": []string{"hist.big"}})
		_ = ws.SetReadDeadline(time.Now().Add(readTimeout))
		if err := ws.ReadJSON(&first); err != nil {
			t.Fatal(err)
		}
		ws.Close()
	}
	res := first["res"].(map[string]any)["hist.big"].(map[string]any)
	epoch := res["e"].(string)

	healthy := wsDial(t, p.ws, 0)
	wsSub(t, healthy, "book.HEALTHY")
	before := p.rssBytes(t)

	// Two TCP and two WebSocket clients each send 500 pulls of the whole
	// history (1 MB per reply: 500 MB each if they were all executed) and
	// 5,000 pings; none of them reads.
	pull := func(id int) map[string]any {
		return map[string]any{"op": "pull", "id": id, "t": "hist.big", "since": map[string]any{"e": epoch, "s": 0}, "limit": 1000}
	}
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", p.tcp)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var buf []byte
		for j := 0; j < 500; j++ {
			b, _ := msgpack.Marshal(pull(j))
			buf = append(binary.BigEndian.AppendUint32(buf, uint32(len(b))), b...)
		}
		go func() { _, _ = c.Write(buf) }()

		ws := wsDial(t, p.ws, 0)
		defer ws.Close()
		go func() {
			for j := 0; j < 500; j++ {
				b, _ := json.Marshal(pull(j))
				if ws.WriteMessage(websocket.TextMessage, b) != nil {
					return
				}
			}
			ping := make([]byte, 125)
			for j := 0; j < 5000; j++ {
				if ws.WriteControl(websocket.PingMessage, ping, time.Now().Add(readTimeout)) != nil {
					return
				}
			}
		}()
	}
	// The attackers end up paused: their input waits unread (the server
	// holds it) while their outboxes are full.
	deadline := time.Now().Add(20 * time.Second)
	// (A client that keeps sending while paused is closed with 4005 once
	// it holds two messages' worth of unread input: also held back.)
	for p.metric(t, "tickfan_input_paused_clients")+p.metric(t, "tickfan_closes_total") < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("attackers not held back: %v paused, %v closed, %v connections, inbound %v bytes, RSS %d MiB",
				p.metric(t, "tickfan_input_paused_clients"), p.metric(t, "tickfan_closes_total"),
				p.metric(t, "tickfan_connections"), p.metric(t, "tickfan_inbound_bytes"), p.rssBytes(t)>>20)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Per attacker: its outbox budget, one pull reply past it, what the
	// reactor buffers, and twice the anonymous frame limit of unread input;
	// plus the Go heap's slack.
	bound := int64(4*(2*outbox+2*outbox+2*64<<10)) + 64<<20
	grown := p.rssBytes(t) - before
	if grown > bound {
		t.Fatalf("RSS grew %d MiB under the attack, bound %d MiB", grown>>20, bound>>20)
	}
	t.Logf("RSS grew %.1f MiB under the attack (bound %d MiB)", float64(grown)/(1<<20), bound>>20)
	// The healthy subscriber is served.
	for i := 0; i < 5; i++ {
		p.publishBatch(t, []byte(fmt.Sprintf(`{"t":"book.HEALTHY","d":%d}`, i)))
	}
	for i := 0; i < 5; i++ {
		var m map[string]any
		_ = healthy.SetReadDeadline(time.Now().Add(readTimeout))
		if err := healthy.ReadJSON(&m); err != nil {
			t.Fatalf("healthy subscriber: %v", err)
		}
		if m["s"] != float64(i+1) {
			t.Fatalf("healthy subscriber got %v, want seq %d", m, i+1)
		}
	}
}
