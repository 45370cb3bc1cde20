package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsDial opens a WebSocket to a process; rcvbuf > 0 shrinks the client's
// socket receive buffer, so a client that stops reading backs the server
// up quickly, as a phone on a bad link does.
func wsDial(t *testing.T, addr string, rcvbuf int) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, NetDial: func(network, a string) (net.Conn, error) {
		c, err := net.Dial(network, a)
		if err == nil && rcvbuf > 0 {
			_ = c.(*net.TCPConn).SetReadBuffer(rcvbuf)
		}
		return c, err
	}}
	ws, _, err := d.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

func wsSub(t *testing.T, ws *websocket.Conn, topics ...string) {
	t.Helper()
	if err := ws.WriteJSON(map[string]any{"op": "sub", "id": 1, "topics": topics}); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := ws.ReadMessage()
	if err != nil || !bytes.Contains(msg, []byte(`"res"`)) {
		t.Fatalf("sub reply: %s %v", msg, err)
	}
}

// uintField reads the unsigned integer after key in a JSON message without
// decoding the whole of it (the payloads here are large).
func uintField(msg []byte, key string) (uint64, bool) {
	i := bytes.Index(msg, []byte(key))
	if i < 0 {
		return 0, false
	}
	var v uint64
	for _, c := range msg[i+len(key):] {
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// TestStalledClientBoundsMemory publishes 200 MiB to a topic while one of
// its subscribers has stopped reading. The server's RSS must grow by less
// than the bound its flags give; the healthy subscriber must get every
// publication; the stalled one, once it reads again, must see contiguous
// seqs, then lag, then (its range being gone from the small history)
// reset, then contiguous live data.
func TestStalledClientBoundsMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("publishes 200 MiB")
	}
	const (
		payloadSize = 4 << 10
		total       = 200 << 20
		pubs        = total / payloadSize // 51,200
		batch       = 64
		history     = 200
		outboxBytes = 1 << 20
		conns       = 2
		name        = "book.STALL"
	)
	t0 := time.Now()
	p := startProc(t, "--history-size", fmt.Sprint(history), "--outbox-bytes", fmt.Sprint(outboxBytes),
		"--slow-timeout", "10m", "--idle-timeout", "10m", "--max-batch", fmt.Sprint(batch))

	healthy := wsDial(t, p.ws, 0)
	wsSub(t, healthy, name)
	stalled := wsDial(t, p.ws, 64<<10)
	wsSub(t, stalled, name)

	// The healthy subscriber reads everything and checks each seq.
	var healthyLast atomic.Uint64
	healthyErr := make(chan error, 1)
	go func() {
		for {
			_ = healthy.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, msg, err := healthy.ReadMessage()
			if err != nil {
				healthyErr <- err
				return
			}
			if !bytes.HasPrefix(msg, []byte(`{"t":"`+name+`"`)) {
				healthyErr <- fmt.Errorf("healthy client got %.200s", msg)
				return
			}
			s, _ := uintField(msg, `"s":`)
			if s != healthyLast.Load()+1 {
				healthyErr <- fmt.Errorf("healthy client: seq %d after %d", s, healthyLast.Load())
				return
			}
			healthyLast.Store(s)
			if s == pubs {
				healthyErr <- nil
				return
			}
		}
	}()

	t.Logf("started in %v", time.Since(t0))
	time.Sleep(200 * time.Millisecond)
	before := p.rssBytes(t)
	peak := before
	item := fmt.Sprintf(`{"t":%q,"d":"%s"}`, name, strings.Repeat("x", payloadSize-2))
	body := []byte(`{"batch":[` + strings.TrimSuffix(strings.Repeat(item+",", batch), ",") + `]}`)
	for sent := 0; sent < pubs; sent += batch {
		// A healthy client keeps up: the publisher never runs more than
		// 128 publications and a batch (768 KiB, under the 1 MiB outbox)
		// ahead of it, wherever the bytes wait (kernel, engine, outbox).
		for uint64(sent)-healthyLast.Load() > 128 && uint64(sent) > healthyLast.Load() {
			select {
			case err := <-healthyErr:
				t.Fatalf("healthy subscriber stopped: %v", err)
			case <-time.After(time.Millisecond):
			}
		}
		p.publishBatch(t, body)
		if sent%(batch*64) == 0 {
			peak = max(peak, p.rssBytes(t))
		}
	}
	if err := <-healthyErr; err != nil {
		t.Fatalf("healthy subscriber: %v", err)
	}
	t.Logf("published and received in %v", time.Since(t0))
	peak = max(peak, p.rssBytes(t))

	// The bound: the history of the topic (payload kept once, frame once
	// for the one format in use), each connection's outbox up to its mark
	// plus what one write hands the reactor, all doubled for the garbage
	// collector's headroom (GOGC=100), plus 48 MiB for the runtime, HTTP
	// request buffers and the rest of the process.
	bound := int64(2*(history*2*(payloadSize+64)+conns*2*outboxBytes) + 48<<20)
	growth := peak - before
	t.Logf("published %d MiB; server RSS %d MiB before, peak %d MiB, growth %d MiB, bound %d MiB",
		total>>20, before>>20, peak>>20, growth>>20, bound>>20)
	if growth > bound {
		t.Fatalf("server RSS grew %d MiB while a client stalled, bound %d MiB", growth>>20, bound>>20)
	}
	if v := p.metric(t, "tickfan_lags_total"); v < 1 {
		t.Fatalf("tickfan_lags_total %v: the stalled client never lagged", v)
	}

	// The stalled client reads again: it may have drained and lagged
	// several times while the publisher ran (half push, half pull), each
	// time with lag first, then reset or the missed range.
	var seq uint64
	lags, resets := 0, 0
	lagged := false
	readStalled := func(until uint64) {
		for seq != until {
			_ = stalled.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, msg, err := stalled.ReadMessage()
			if err != nil {
				t.Fatalf("stalled client after seq %d (%d lags, %d resets): %v", seq, lags, resets, err)
			}
			if bytes.HasPrefix(msg, []byte(`{"t":`)) {
				s, _ := uintField(msg, `"s":`)
				if s != seq+1 {
					t.Fatalf("stalled client: seq %d after %d (%d lags, %d resets)", s, seq, lags, resets)
				}
				seq, lagged = s, false
				continue
			}
			var m struct {
				Op string `json:"op"`
				T  string `json:"t"`
				S  uint64 `json:"s"`
			}
			if err := json.Unmarshal(msg, &m); err != nil || m.T != name {
				t.Fatalf("stalled client got %.200s", msg)
			}
			switch m.Op {
			case "lag":
				if m.S != seq {
					t.Fatalf("lag s=%d, but the last publication received is %d", m.S, seq)
				}
				lags, lagged = lags+1, true
				t.Logf("lag at %d after %v", m.S, time.Since(t0))
			case "reset":
				// Right after its lag, or after a first chunk of the
				// missed range when the rest is gone by the time the
				// next chunk is due: every reset answers a lag of its own.
				if !lagged && lags <= resets {
					t.Fatalf("reset at %d without lag first (%d lags, %d resets)", m.S, lags, resets)
				}
				seq, resets, lagged = m.S, resets+1, false
				t.Logf("reset to %d after %v", m.S, time.Since(t0))
			default:
				t.Fatalf("stalled client got %s", msg)
			}
		}
	}
	// It reads fast now: its receive window opens again.
	_ = stalled.UnderlyingConn().(*net.TCPConn).SetReadBuffer(4 << 20)
	readStalled(pubs)
	if lags == 0 {
		t.Fatal("the stalled client never got lag")
	}
	// Live data flows again, contiguous.
	one := []byte(`{"batch":[` + item + `]}`)
	for i := 0; i < 5; i++ {
		p.publishBatch(t, one)
	}
	readStalled(pubs + 5)
	t.Logf("stalled client: %d lags, %d resets, then contiguous to %d", lags, resets, seq)
}

// TestConflatedTickerDeliversNewest stalls a subscriber of a ticker topic
// (conflated by default) while 2,000 updates go out, then reads: it must
// get the newest value soon, not a backlog, and never lag.
func TestConflatedTickerDeliversNewest(t *testing.T) {
	p := startProc(t)
	const name, n = "ticker.CONF", 2000
	ws := wsDial(t, p.ws, 4096)
	wsSub(t, ws, name)
	pad := strings.Repeat("y", 1000)
	for i := 1; i <= n; i += 100 {
		var items []string
		for j := i; j < i+100; j++ {
			items = append(items, fmt.Sprintf(`{"t":%q,"d":{"v":%d,"pad":%q}}`, name, j, pad))
		}
		p.publishBatch(t, []byte(`{"batch":[`+strings.Join(items, ",")+`]}`))
	}
	_ = ws.UnderlyingConn().(*net.TCPConn).SetReadBuffer(4 << 20)
	var last uint64
	got := 0
	for last != n {
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("after %d messages (last seq %d): %v", got, last, err)
		}
		if bytes.Contains(msg, []byte(`"op":"lag"`)) {
			t.Fatalf("conflated topic got lag: %s", msg)
		}
		s, _ := uintField(msg, `"s":`)
		if s <= last {
			t.Fatalf("seq %d after %d: a conflated topic's seq only increases", s, last)
		}
		v, _ := uintField(msg, `"v":`)
		if v != s {
			t.Fatalf("publication s=%d carries v=%d", s, v)
		}
		last = s
		got++
	}
	if got >= n {
		t.Fatalf("got all %d updates: nothing was conflated", got)
	}
	if v := p.metric(t, "tickfan_conflated_total"); v < 1 {
		t.Fatalf("tickfan_conflated_total %v", v)
	}
	t.Logf("%d updates published, %d delivered to the stalled reader, newest last", n, got)
}

// TestSilentClientClosedIdle checks a client that sends nothing is closed
// with 4001 after --idle-timeout, with op close first; and that a client
// that keeps talking (here: answering the server's pings) stays.
func TestSilentClientClosedIdle(t *testing.T) {
	const idle, heartbeat = 800 * time.Millisecond, 100 * time.Millisecond
	// The server's timer-wheel clock may trail this side's by a tick or
	// two (10 ms each), more while its goroutine waits for a CPU.
	const clockSlack = heartbeat
	p := startProc(t, "--idle-timeout", idle.String(), "--heartbeat", heartbeat.String())
	start := time.Now() // before the silent client's last byte, its handshake
	silent := wsDial(t, p.ws, 0)
	silent.SetPingHandler(func(string) error { return nil }) // gorilla would pong: that is life
	talker := wsDial(t, p.ws, 0)
	// The talker answers each server ping with a pong and tells the test;
	// a goroutine reads it (ping handlers run within reads) and hands on
	// its messages and how it ended.
	pinged := make(chan struct{}, 64)
	talker.SetPingHandler(func(data string) error {
		err := talker.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(readTimeout))
		select {
		case pinged <- struct{}{}:
		default:
		}
		return err
	})
	msgs := make(chan []byte, 8)
	ended := make(chan error, 1)
	go func() {
		for {
			_, msg, err := talker.ReadMessage() // ends when the test closes it
			if err != nil {
				ended <- err
				return
			}
			select {
			case msgs <- msg:
			default: // the test reads one reply; nothing else is expected
			}
		}
	}()
	var op map[string]any
	for {
		_ = silent.SetReadDeadline(time.Now().Add(readTimeout))
		_, msg, err := silent.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !errorsAs(err, &ce) || ce.Code != 4001 {
				t.Fatalf("silent client: %v, want close frame 4001", err)
			}
			break
		}
		if err := json.Unmarshal(msg, &op); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < idle-clockSlack {
		t.Fatalf("closed after %v, before the %v idle timeout", el, idle)
	}
	if op["op"] != "close" || op["code"].(float64) != 4001 {
		t.Fatalf("last message %v, want op close 4001", op)
	}
	// The talker is alive well past the idle timeout: the server sends a
	// ping every heartbeat by its clock, so its nth comes n heartbeats
	// after the connection opened, and only to an open connection.
	const want = int(3*idle/heartbeat/2) + 1
	for pings := 0; pings < want; pings++ {
		select {
		case <-pinged:
		case err := <-ended:
			t.Fatalf("talking client closed (%d of %d server pings counted): %v", pings, want, err)
		case <-time.After(readTimeout):
			t.Fatalf("talking client: no server ping in %v after %d", readTimeout, pings)
		}
	}
	if err := talker.WriteJSON(map[string]any{"op": "ping", "id": 7}); err != nil {
		t.Fatalf("talking client: %v", err)
	}
	select {
	case msg := <-msgs:
		v, err := decodeJSON(msg)
		m, _ := v.(map[string]any)
		if err != nil || checkReply(m, 7) != nil || !hasKeys(m, "id", "res") {
			t.Fatalf("talking client: got %s, want the reply to ping 7", msg)
		}
	case err := <-ended:
		t.Fatalf("talking client closed before the reply to ping 7: %v", err)
	case <-time.After(readTimeout):
		t.Fatalf("talking client: no reply to ping 7 in %v", readTimeout)
	}
}

// TestHalfOpenUpgradeClosed opens TCP to the WebSocket port, sends half a
// handshake, and expects the server to close it after --handshake-timeout.
func TestHalfOpenUpgradeClosed(t *testing.T) {
	p := startProc(t, "--handshake-timeout", "300ms")
	c, err := net.Dial("tcp", p.ws)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 512))
	if err == nil || n != 0 {
		t.Fatalf("read %d bytes, err %v: want the connection closed", n, err)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("half-open upgrade still open after 5s")
	}
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Fatalf("closed after %v, before the 300ms handshake timeout", el)
	}
	// The count may follow the close by a moment (std counts it when
	// net/http reports the connection closed).
	for deadline := time.Now().Add(readTimeout); ; time.Sleep(10 * time.Millisecond) {
		v := p.metric(t, "tickfan_ws_handshake_timeouts_total")
		if v == 1 {
			break
		}
		if v > 1 || time.Now().After(deadline) {
			t.Fatalf("tickfan_ws_handshake_timeouts_total %v, want 1", v)
		}
	}
}
