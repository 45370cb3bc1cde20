package codec

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

const testKey = "dGhlIHNhbXBsZSBub25jZQ=="

func upgradeRequest(target string, extra ...string) string {
	var b strings.Builder
	b.WriteString("GET " + target + " HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
	b.WriteString("Sec-WebSocket-Key: " + testKey + "\r\nSec-WebSocket-Version: 13\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// readResponse parses an HTTP response with net/http.
func readResponse(t *testing.T, b []byte) (*http.Response, string) {
	t.Helper()
	r := bufio.NewReader(bytes.NewReader(b))
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("response %q: %v", b, err)
	}
	var body bytes.Buffer
	if resp.StatusCode != http.StatusSwitchingProtocols {
		if _, err := body.ReadFrom(resp.Body); err != nil {
			t.Fatal(err)
		}
	}
	if r.Buffered() != 0 {
		t.Fatalf("%d bytes after the response", r.Buffered())
	}
	return resp, body.String()
}

func acceptFor(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

func TestHandshakeUpgrade(t *testing.T) {
	tests := []struct {
		name     string
		req      string
		format   Format
		protocol string // "" means no Sec-WebSocket-Protocol header
	}{
		{"no subprotocol", upgradeRequest("/ws"), WSJSON, ""},
		{"json", upgradeRequest("/ws", "Sec-WebSocket-Protocol: tickfan.v1.json"), WSJSON, "tickfan.v1.json"},
		{"msgpack", upgradeRequest("/ws", "Sec-WebSocket-Protocol: tickfan.v1.msgpack"), WSMsgpack, "tickfan.v1.msgpack"},
		{"msgpack first", upgradeRequest("/ws", "Sec-WebSocket-Protocol: tickfan.v1.msgpack, tickfan.v1.json"), WSMsgpack, "tickfan.v1.msgpack"},
		{"json first", upgradeRequest("/ws", "Sec-WebSocket-Protocol: tickfan.v1.json, tickfan.v1.msgpack"), WSJSON, "tickfan.v1.json"},
		{"unknown then msgpack", upgradeRequest("/ws", "Sec-WebSocket-Protocol: chat, tickfan.v1.msgpack"), WSMsgpack, "tickfan.v1.msgpack"},
		{"two headers", upgradeRequest("/ws", "Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Protocol: tickfan.v1.msgpack"), WSMsgpack, "tickfan.v1.msgpack"},
		{"unknown only", upgradeRequest("/ws", "Sec-WebSocket-Protocol: chat, superchat"), WSJSON, ""},
		{"query string", upgradeRequest("/ws?token=abc&x=1"), WSJSON, ""},
		{"other headers", upgradeRequest("/ws", "Origin: http://example.com", "Cookie: a=b", "User-Agent: test"), WSJSON, ""},
		{"header case", strings.Replace(upgradeRequest("/ws"), "Upgrade: websocket", "upgrade: WebSocket", 1), WSJSON, ""},
		{"connection list", strings.Replace(upgradeRequest("/ws"), "Connection: Upgrade", "Connection: keep-alive, Upgrade", 1), WSJSON, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Handshake([]byte(tt.req), "/ws")
			if r.Err != nil || r.N != len(tt.req) {
				t.Fatalf("N=%d Err=%v, response %q", r.N, r.Err, r.Response)
			}
			resp, _ := readResponse(t, r.Response)
			if resp.StatusCode != 101 || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") ||
				!strings.EqualFold(resp.Header.Get("Connection"), "Upgrade") ||
				resp.Header.Get("Sec-WebSocket-Accept") != acceptFor(testKey) {
				t.Fatalf("response %q", r.Response)
			}
			if got := resp.Header.Values("Sec-WebSocket-Protocol"); tt.protocol == "" && len(got) != 0 || tt.protocol != "" && (len(got) != 1 || got[0] != tt.protocol) {
				t.Fatalf("Sec-WebSocket-Protocol %q, want %q", got, tt.protocol)
			}
			if r.Format != tt.format {
				t.Fatalf("format %v, want %v", r.Format, tt.format)
			}
		})
	}
}

func TestHandshakeIncremental(t *testing.T) {
	req := upgradeRequest("/ws", "Sec-WebSocket-Protocol: tickfan.v1.msgpack")
	for k := 0; k < len(req); k++ {
		if r := Handshake([]byte(req[:k]), "/ws"); r.N != 0 || r.Err != nil || r.Response != nil {
			t.Fatalf("prefix %d: %+v", k, r)
		}
	}
	// Frames right behind the request are not part of it.
	frames := clientFrame(t, true, 2, []byte("\x81\xa2op\xa4ping"))
	buf := append([]byte(req), frames...)
	r := Handshake(buf, "/ws")
	if r.Err != nil || r.N != len(req) || r.Format != WSMsgpack {
		t.Fatalf("N=%d (want %d) Err=%v", r.N, len(req), r.Err)
	}
	if fr, n, err := ReadWSFrame(buf[r.N:], 100); err != nil || n != len(frames) || string(fr.Payload) != "\x81\xa2op\xa4ping" {
		t.Fatalf("frame after the request: n=%d err=%v", n, err)
	}
	// Even a body the Upgrader might want to read past.
	long := upgradeRequest("/ws", "X-Pad: "+strings.Repeat("p", 5000))
	buf = append([]byte(long), bytes.Repeat([]byte("\r\n\r\n"), 100)...)
	if r := Handshake(buf, "/ws"); r.Err != nil || r.N != len(long) {
		t.Fatalf("long request: N=%d Err=%v", r.N, r.Err)
	}
}

func TestHandshakeRefused(t *testing.T) {
	tests := []struct {
		name   string
		req    string
		status int
	}{
		{"wrong path", upgradeRequest("/other"), 404},
		{"path prefix", upgradeRequest("/wsx"), 404},
		{"root", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"garbage", "hello there\r\n\r\n", 400},
		{"binary garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400},
		{"missing upgrade", strings.Replace(upgradeRequest("/ws"), "Upgrade: websocket\r\n", "", 1), 400},
		{"plain GET", "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"missing key", strings.Replace(upgradeRequest("/ws"), "Sec-WebSocket-Key: "+testKey+"\r\n", "", 1), 400},
		{"missing host", strings.Replace(upgradeRequest("/ws"), "Host: example.com\r\n", "", 1), 400},
		{"bad connection", strings.Replace(upgradeRequest("/ws"), "Connection: Upgrade", "Connection: close", 1), 400},
		{"malformed header", strings.Replace(upgradeRequest("/ws"), "Host: example.com", "Host example.com", 1), 400},
		{"old version", strings.Replace(upgradeRequest("/ws"), "Version: 13", "Version: 8", 1), 426},
		{"POST", strings.Replace(upgradeRequest("/ws"), "GET", "POST", 1), 405},
		{"HTTP/1.0", strings.Replace(upgradeRequest("/ws"), "HTTP/1.1", "HTTP/1.0", 1), 505},
		{"too long", "GET /ws HTTP/1.1\r\nX: " + strings.Repeat("a", 9000), 431},
		{"too long, complete", "GET /ws HTTP/1.1\r\nX: " + strings.Repeat("a", 9000) + "\r\n\r\n", 431},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Handshake([]byte(tt.req), "/ws")
			if r.Err == nil || r.N == 0 || r.N > len(tt.req) {
				t.Fatalf("N=%d Err=%v", r.N, r.Err)
			}
			resp, body := readResponse(t, r.Response)
			if resp.StatusCode != tt.status || !resp.Close || !bytes.Contains(r.Response, []byte("\r\nConnection: close\r\n")) || body == "" {
				t.Fatalf("response %q, want status %d with Connection: close", r.Response, tt.status)
			}
			if resp.ContentLength != int64(len(body)) {
				t.Fatalf("Content-Length %d, body %d bytes", resp.ContentLength, len(body))
			}
			if tt.status == 426 && resp.Header.Get("Sec-WebSocket-Version") != "13" {
				t.Fatal("426 without Sec-WebSocket-Version: 13")
			}
			if he, ok := r.Err.(*HandshakeError); !ok || he.Status != tt.status || !strings.Contains(he.Error(), itoa(tt.status)) {
				t.Fatalf("Err %v", r.Err)
			}
		})
	}
}
