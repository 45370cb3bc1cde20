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

// TestGracefulDrain sends SIGTERM to a serving process: /readyz turns 503,
// every client reads op close 4007 (WebSocket also a close frame with
// 4007) and then a clean end of stream, a new connection is closed as it
// arrives, and the process exits 0 as soon as no client is left: with a
// client that never closes its side, once the close's linger has passed,
// long before --drain-timeout.
func TestGracefulDrain(t *testing.T) {
	const drainTimeout = time.Minute
	p := startProc(t, "--drain-timeout", drainTimeout.String())
	ws := wsDial(t, p.ws, 0)
	wsSub(t, ws, "book.DRAIN")
	// A ping answered: the server has accepted the TCP connection (a dial
	// returns once the kernel has; one accepted after SIGTERM is closed).
	tw := dialTCPPinged(t, p.tcp)
	tcp := tw.c
	defer tcp.Close()
	// A client that reads nothing more and never closes.
	mute := dialTCPPinged(t, p.tcp).c
	defer mute.Close()
	if code := httpStatus(t, p.httpURL+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz %d before the drain", code)
	}
	exited := make(chan error, 1)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// /readyz turns 503 as the signal arrives, while the clients (which
	// have not closed yet) keep the process up.
	for deadline := time.Now().Add(readTimeout); ; time.Sleep(5 * time.Millisecond) {
		code := httpStatus(t, p.httpURL+"/readyz")
		if code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz %d after SIGTERM, want 503", code)
		}
	}
	// A new connection is closed at once, without a byte.
	late, err := net.Dial("tcp", p.tcp)
	if err == nil {
		_ = late.SetReadDeadline(time.Now().Add(readTimeout))
		k, rerr := late.Read(make([]byte, 16))
		late.Close()
		if k != 0 || rerr == nil || isTimeout(rerr) {
			t.Fatalf("a connection during the drain read %d bytes, err %v: want it closed", k, rerr)
		}
	}

	// The WebSocket client gets op close 4007, then the close frame, then
	// the end of the stream.
	_ = ws.SetReadDeadline(time.Now().Add(readTimeout))
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
	expectCleanEOF(t, ws.NetConn())

	// The TCP client gets op close 4007, then the end of the stream.
	_ = tcp.SetReadDeadline(time.Now().Add(readTimeout))
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
	if err := msgpack.Unmarshal(body, &m); err != nil || m["op"] != "close" || normalize(m["code"]) != int64(4007) {
		t.Fatalf("tcp got %v (%v), want op close 4007", m, err)
	}
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("tcp after op close: %v, want a clean end of stream", err)
	}
	tcp.Close()
	ws.Close()

	// The mute client is closed once the close's linger has passed; the
	// process exits then, well before the drain timeout.
	go func() { exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("tickfan exited with %v, want 0", err)
		}
	case <-time.After(drainTimeout / 2):
		t.Fatal("tickfan still draining, with every client closed or told to go")
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

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// dialTCPPinged connects over TCP and returns once a ping is answered:
// the server has accepted the connection then, not only the kernel.
func dialTCPPinged(t *testing.T, addr string) *tcpWire {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tw := &tcpWire{c: c, r: bufio.NewReader(c)}
	ping, _ := msgpack.Marshal(map[string]any{"op": "ping", "id": 1})
	if err := tw.write(ping); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.read(readTimeout); err != nil {
		t.Fatalf("tcp ping: %v", err)
	}
	return tw
}
