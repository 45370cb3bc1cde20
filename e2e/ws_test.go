package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// WebSocket opcodes (RFC 6455 5.2).
const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xa
)

// rawWS is a WebSocket client on a plain net.Conn with a hand-written
// framer, for what a library client would not let a test do.
type rawWS struct {
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawWS {
	t.Helper()
	c := dialConn(t, addr, addr)
	return &rawWS{c: c, br: bufio.NewReader(c)}
}

func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// acceptFor is the Sec-WebSocket-Accept a server must answer to key.
func acceptFor(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// upgradeRequest is an RFC 6455 opening handshake.
func upgradeRequest(host, path, key string, protocols ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", path, host)
	fmt.Fprintf(&b, "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", key)
	if len(protocols) > 0 {
		fmt.Fprintf(&b, "Sec-WebSocket-Protocol: %s\r\n", strings.Join(protocols, ", "))
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// frame builds one client frame, masked unless told otherwise.
func frame(fin bool, op byte, payload []byte, masked bool) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	var mbit byte
	if masked {
		mbit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		out = append(out, mbit|byte(n))
	case n <= 0xffff:
		out = append(out, mbit|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, mbit|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if !masked {
		return append(out, payload...)
	}
	var key [4]byte
	_, _ = rand.Read(key[:])
	out = append(out, key[:]...)
	for i, c := range payload {
		out = append(out, c^key[i%4])
	}
	return out
}

func textFrame(s string) []byte { return frame(true, opText, []byte(s), true) }

func (w *rawWS) write(t testing.TB, b []byte) {
	t.Helper()
	_ = w.c.SetWriteDeadline(time.Now().Add(readTimeout))
	if _, err := w.c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// response reads the server's HTTP answer to the opening handshake.
func (w *rawWS) response(t testing.TB) *http.Response {
	t.Helper()
	_ = w.c.SetReadDeadline(time.Now().Add(readTimeout))
	resp, err := http.ReadResponse(w.br, nil)
	if err != nil {
		t.Fatalf("read handshake response: %v", err)
	}
	return resp
}

// expectUpgrade checks a 101 answer that accepts key.
func expectUpgrade(t testing.TB, resp *http.Response, key string) {
	t.Helper()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: status %s, want 101", resp.Status)
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") ||
		!strings.Contains(strings.ToLower(resp.Header.Get("Connection")), "upgrade") {
		t.Fatalf("handshake: headers %v, want Upgrade: websocket and Connection: Upgrade", resp.Header)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != acceptFor(key) {
		t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, acceptFor(key))
	}
}

// open dials and upgrades with one write.
func openRaw(t testing.TB, n *node, protocols ...string) *rawWS {
	t.Helper()
	w := dialRaw(t, n.srv.WSAddr())
	key := newKey()
	w.write(t, upgradeRequest(n.srv.WSAddr(), "/ws", key, protocols...))
	expectUpgrade(t, w.response(t), key)
	return w
}

// serverFrame is one frame from the server.
type serverFrame struct {
	fin     bool
	op      byte
	payload []byte
}

// readFrame reads one server frame; a server must not mask.
func (w *rawWS) readFrame() (serverFrame, error) {
	_ = w.c.SetReadDeadline(time.Now().Add(readTimeout))
	var h [2]byte
	if _, err := io.ReadFull(w.br, h[:]); err != nil {
		return serverFrame{}, err
	}
	if h[1]&0x80 != 0 {
		return serverFrame{}, errors.New("server frame is masked")
	}
	if h[0]&0x70 != 0 {
		return serverFrame{}, fmt.Errorf("server frame has RSV bits % x", h[0])
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(w.br, ext[:]); err != nil {
			return serverFrame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(w.br, ext[:]); err != nil {
			return serverFrame{}, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if n > maxFrame {
		return serverFrame{}, fmt.Errorf("server frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(w.br, p); err != nil {
		return serverFrame{}, err
	}
	return serverFrame{fin: h[0]&0x80 != 0, op: h[0] & 0x0f, payload: p}, nil
}

func (w *rawWS) mustFrame(t testing.TB) serverFrame {
	t.Helper()
	f, err := w.readFrame()
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return f
}

// jsonMsg reads one frame that must be a whole text frame of a JSON map.
func (w *rawWS) jsonMsg(t testing.TB) msg {
	t.Helper()
	f := w.mustFrame(t)
	if f.op != opText || !f.fin {
		t.Fatalf("got frame op %#x fin %v %q, want one text frame", f.op, f.fin, f.payload)
	}
	v, err := decodeJSON(f.payload)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("message %q is not a map", f.payload)
	}
	return m
}

// expectPing checks the next message is the reply {"id":id,"res":{}}.
func (w *rawWS) expectPong(t testing.TB, id int) {
	t.Helper()
	m := w.jsonMsg(t)
	want := map[string]any{"id": int64(id), "res": map[string]any{}}
	if !reflect.DeepEqual(map[string]any(m), want) {
		t.Fatalf("got %s, want %s", m, show(want))
	}
}

func pingCmd(id int) string { return fmt.Sprintf(`{"op":"ping","id":%d}`, id) }

// expectEOF checks the server closes the connection.
func (w *rawWS) expectEOF(t testing.TB) {
	t.Helper()
	_ = w.c.SetReadDeadline(time.Now().Add(readTimeout))
	b, err := io.ReadAll(w.br)
	if err != nil && !isClosed(err) {
		t.Fatalf("want the connection closed, got %v", err)
	}
	if len(b) > 0 {
		t.Fatalf("want the connection closed, got more bytes % x", b)
	}
}

// isClosed reports whether err says the peer closed the connection.
func isClosed(err error) bool {
	var ce *websocket.CloseError
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, net.ErrClosed) || errors.As(err, &ce)
}

// expectCloseFrame checks the next frame is a close frame carrying code
// (no op close before it), and that the server then closes the connection.
func (w *rawWS) expectCloseFrame(t testing.TB, code int) {
	t.Helper()
	f := w.mustFrame(t)
	if f.op != opClose || !f.fin {
		t.Fatalf("got frame op %#x %q, want a close frame with code %d (and no op close before it)", f.op, f.payload, code)
	}
	if len(f.payload) < 2 {
		t.Fatalf("close frame % x has no code, want %d", f.payload, code)
	}
	if got := int(binary.BigEndian.Uint16(f.payload)); got != code {
		t.Fatalf("close frame code %d (%q), want %d", got, f.payload[2:], code)
	}
	w.expectEOF(t)
}

func TestWSSubprotocol(t *testing.T) {
	t.Parallel()
	n := start(t)
	cases := []struct {
		name    string
		offer   []string
		header  string // chosen subprotocol; "" means no header at all
		msgType int
	}{
		{"json", []string{protoJSON}, protoJSON, websocket.TextMessage},
		{"msgpack", []string{protoMsgpack}, protoMsgpack, websocket.BinaryMessage},
		{"none", nil, "", websocket.TextMessage},
		{"unknown", []string{"tickfan.v2.json", "chat"}, "", websocket.TextMessage},
		{"msgpack among unknown", []string{"chat", protoMsgpack}, protoMsgpack, websocket.BinaryMessage},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := websocket.Dialer{HandshakeTimeout: readTimeout, Subprotocols: tc.offer}
			c, resp, err := d.Dial("ws://"+n.srv.WSAddr()+"/ws", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			vals, present := resp.Header[http.CanonicalHeaderKey("Sec-WebSocket-Protocol")]
			switch {
			case tc.header == "" && present:
				t.Fatalf("offer %v: Sec-WebSocket-Protocol %q, want no such header", tc.offer, vals)
			case tc.header != "" && (len(vals) != 1 || vals[0] != tc.header):
				t.Fatalf("offer %v: Sec-WebSocket-Protocol %q, want %q", tc.offer, vals, tc.header)
			}
			cl := &client{name: tc.name, w: &wsWire{c: c, typ: tc.msgType}, f: jsonFormat}
			if tc.msgType == websocket.BinaryMessage {
				cl.f = msgpackFormat
			}
			cl.alive(t)
		})
	}
}

func TestWSWrongPath(t *testing.T) {
	t.Parallel()
	n := start(t)
	check := healthy(t, n) // a rejection must cost a healthy client nothing
	for _, path := range []string{"/", "/other", "/ws/x", "/wss"} {
		d := websocket.Dialer{HandshakeTimeout: readTimeout}
		c, resp, err := d.Dial("ws://"+n.srv.WSAddr()+path, nil)
		if err == nil {
			c.Close()
			t.Fatalf("upgrade on %s succeeded, want 404", path)
		}
		if resp == nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("upgrade on %s: %v %v, want HTTP 404", path, err, resp)
		}
	}
	check()
}

func TestWSGarbageHandshake(t *testing.T) {
	t.Parallel()
	n := start(t)
	check := healthy(t, n) // a rejection must cost a healthy client nothing
	for name, garbage := range map[string]string{
		"text":           "hello, this is no HTTP\r\n\r\n",
		"binary":         "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
		"bad first line": "GET\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			w := dialRaw(t, n.srv.WSAddr())
			w.write(t, []byte(garbage))
			resp := w.response(t)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("garbage %q: status %s, want 400", garbage, resp.Status)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			w.expectEOF(t)
		})
	}
	check()
}

func TestWSHandshakeByteByByte(t *testing.T) {
	t.Parallel()
	n := start(t)
	w := dialRaw(t, n.srv.WSAddr())
	key := newKey()
	for _, b := range upgradeRequest(n.srv.WSAddr(), "/ws", key, protoJSON) {
		w.write(t, []byte{b})
	}
	resp := w.response(t)
	expectUpgrade(t, resp, key)
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != protoJSON {
		t.Fatalf("Sec-WebSocket-Protocol %q, want %q", got, protoJSON)
	}
	// And a frame byte by byte too.
	for _, b := range textFrame(pingCmd(1)) {
		w.write(t, []byte{b})
	}
	w.expectPong(t, 1)
}

func TestWSTwoFramesInOneWrite(t *testing.T) {
	t.Parallel()
	n := start(t)
	w := openRaw(t, n)
	w.write(t, append(textFrame(pingCmd(1)), textFrame(pingCmd(2))...))
	w.expectPong(t, 1)
	w.expectPong(t, 2)

	// The handshake and a frame in one write.
	w2 := dialRaw(t, n.srv.WSAddr())
	key := newKey()
	w2.write(t, append(upgradeRequest(n.srv.WSAddr(), "/ws", key), textFrame(pingCmd(3))...))
	expectUpgrade(t, w2.response(t), key)
	w2.expectPong(t, 3)
}

func TestWSFrameSplitAcrossWrites(t *testing.T) {
	t.Parallel()
	n := start(t)
	w := openRaw(t, n)
	f := textFrame(pingCmd(7))
	// Cut inside the header, inside the mask key and inside the payload. The
	// pauses let each piece reach the server on its own; nothing waits on them.
	for _, cut := range [][2]int{{0, 1}, {1, 4}, {4, 10}, {10, len(f)}} {
		w.write(t, f[cut[0]:cut[1]])
		time.Sleep(20 * time.Millisecond)
	}
	w.expectPong(t, 7)
	// A long frame (16-bit length) split in two.
	long := textFrame(fmt.Sprintf(`{"op":"ping","id":8,"pad":"%s"}`, strings.Repeat("x", 300)))
	w.write(t, long[:3])
	time.Sleep(20 * time.Millisecond)
	w.write(t, long[3:])
	w.expectPong(t, 8)
}

func TestWSFragmentedMessage(t *testing.T) {
	t.Parallel()
	n := start(t)
	w := openRaw(t, n)
	cmd := []byte(pingCmd(9))
	var b []byte
	b = append(b, frame(false, opText, cmd[:5], true)...)
	b = append(b, frame(true, opPing, []byte("mid"), true)...) // control frames may come between fragments
	b = append(b, frame(false, opCont, cmd[5:10], true)...)
	b = append(b, frame(true, opCont, cmd[10:], true)...)
	w.write(t, b)
	f := w.mustFrame(t)
	if f.op != opPong || string(f.payload) != "mid" {
		t.Fatalf("got frame op %#x %q, want the pong \"mid\"", f.op, f.payload)
	}
	w.expectPong(t, 9)
}

func TestWSPingPong(t *testing.T) {
	t.Parallel()
	n := start(t)
	w := openRaw(t, n)
	for _, p := range [][]byte{[]byte("tickfan-ping-42"), {}, bytes.Repeat([]byte{0xff, 0}, 62)} {
		w.write(t, frame(true, opPing, p, true))
		f := w.mustFrame(t)
		if f.op != opPong || !f.fin || !bytes.Equal(f.payload, p) {
			t.Fatalf("ping % x → frame op %#x fin %v % x, want a pong with the same payload", p, f.op, f.fin, f.payload)
		}
	}
	// The connection still serves commands.
	w.write(t, textFrame(pingCmd(1)))
	w.expectPong(t, 1)
}

func TestWSCloseFrame(t *testing.T) {
	t.Parallel()
	n := start(t)
	for _, code := range []int{1000, 4321} {
		w := openRaw(t, n)
		w.write(t, textFrame(pingCmd(1)))
		w.expectPong(t, 1)
		w.write(t, frame(true, opClose, append(binary.BigEndian.AppendUint16(nil, uint16(code)), "bye"...), true))
		w.expectCloseFrame(t, code)
	}
	// A close frame without a body is answered too.
	w := openRaw(t, n)
	w.write(t, frame(true, opClose, nil, true))
	f := w.mustFrame(t)
	if f.op != opClose {
		t.Fatalf("empty close → frame op %#x %q, want a close frame", f.op, f.payload)
	}
	if len(f.payload) >= 2 {
		if code := binary.BigEndian.Uint16(f.payload); code != 1000 {
			t.Fatalf("empty close answered with code %d, want none or 1000", code)
		}
	}
	w.expectEOF(t)
}

func TestWSProtocolViolations(t *testing.T) {
	t.Parallel()
	n := start(t)
	check := healthy(t, n) // a rejection must cost a healthy client nothing
	big := frame(true, opText, nil, true)[:1]
	big = append(big, 0x80|127)
	big = binary.BigEndian.AppendUint64(big, maxFrame+1)
	big = append(big, 1, 2, 3, 4) // mask key; no payload follows
	cases := []struct {
		name  string
		frame []byte
		code  int
	}{
		{"unmasked frame", frame(true, opText, []byte(pingCmd(1)), false), 1002},
		{"invalid UTF-8 in text", frame(true, opText, []byte{'"', 0xff, 0xfe, '"'}, true), 1007},
		{"frame over --max-frame", big, 1009},
		{"reserved opcode", frame(true, 0x3, []byte("x"), true), 1002},
		{"fragmented ping", frame(false, opPing, []byte("x"), true), 1002},
		{"continuation without start", frame(true, opCont, []byte("x"), true), 1002},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := openRaw(t, n)
			w.write(t, tc.frame)
			w.expectCloseFrame(t, tc.code)
		})
	}
	check()
}
