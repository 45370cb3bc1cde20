package e2e

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/vmihailenco/msgpack/v5"
)

// TestGracefulDrain sends SIGTERM to a serving process: /readyz must turn
// 503 at once, clients get op close 4007 (WebSocket also a close frame with
// 4007), new connections are closed as they arrive, a client that does not
// leave is closed after --drain-timeout, and the process exits 0.
func TestGracefulDrain(t *testing.T) {
	p := startProc(t, "--drain-timeout", "1500ms")
	ws := wsDial(t, p.ws, 0)
	wsSub(t, ws, "book.DRAIN")
	tcp, err := net.Dial("tcp", p.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	// A ping answered: the server has accepted the TCP connection (a dial
	// returns once the kernel has; one accepted after SIGTERM is closed).
	tw := &tcpWire{c: tcp, r: bufio.NewReader(tcp)}
	ping, _ := msgpack.Marshal(map[string]any{"op": "ping", "id": 1})
	if err := tw.write(ping); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.read(readTimeout); err != nil {
		t.Fatalf("tcp ping: %v", err)
	}
	if code := httpStatus(t, p.httpURL+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz %d before the drain", code)
	}

	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// /readyz turns 503 at once.
	for {
		if httpStatus(t, p.httpURL+"/readyz") == http.StatusServiceUnavailable {
			break
		}
		if time.Since(start) > 500*time.Millisecond {
			t.Fatal("/readyz still 200 half a second after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The WebSocket client gets op close 4007, then the close frame.
	_ = ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, msg, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("websocket: %v, want op close 4007 first", err)
	}
	var m map[string]any
	if err := json.Unmarshal(msg, &m); err != nil || m["op"] != "close" || m["code"] != float64(4007) {
		t.Fatalf("websocket got %s, want op close 4007", msg)
	}
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4007 {
		t.Fatalf("websocket: %v, want a close frame 4007", err)
	}

	// The TCP client gets op close 4007 and stays until the timeout.
	_ = tcp.SetReadDeadline(time.Now().Add(3 * time.Second))
	r := tw.r
	var n uint32
	if err := binary.Read(r, binary.BigEndian, &n); err != nil {
		t.Fatalf("tcp: %v, want op close 4007", err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatal(err)
	}
	m = nil
	if err := msgpack.Unmarshal(body, &m); err != nil || m["op"] != "close" || toInt(m["code"]) != 4007 {
		t.Fatalf("tcp got %v (%v), want op close 4007", m, err)
	}

	// A new connection is closed at once, without a byte.
	late, err := net.Dial("tcp", p.tcp)
	if err == nil {
		_ = late.SetReadDeadline(time.Now().Add(2 * time.Second))
		k, rerr := late.Read(make([]byte, 16))
		late.Close()
		if k != 0 || rerr == nil || isTimeout(rerr) {
			t.Fatalf("a connection during the drain read %d bytes, err %v: want it closed", k, rerr)
		}
	}

	// The TCP client did not leave: it is closed at the drain timeout.
	if _, err := r.ReadByte(); err == nil {
		t.Fatal("tcp client got more data after op close")
	}
	closedAfter := time.Since(start)
	if closedAfter < time.Second {
		t.Fatalf("tcp client closed %v after SIGTERM, before the 1.5s drain timeout", closedAfter)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("tickfan exited with %v, want 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tickfan did not exit after the drain")
	}
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case int8:
		return int64(n)
	case int16:
		return int64(n)
	case int32:
		return int64(n)
	case int64:
		return n
	case uint8:
		return int64(n)
	case uint16:
		return int64(n)
	case uint32:
		return int64(n)
	case uint64:
		return int64(n)
	}
	return -1
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
