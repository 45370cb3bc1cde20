package client

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/gobwas/ws"

	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/topic"
)

var formats = map[Proto]codec.Format{WSJSON: codec.WSJSON, WSMsgpack: codec.WSMsgpack, TCP: codec.TCPMsgpack}

// Every message the server's codec makes parses as a frame of its Proto
// and decodes to what was encoded; a publication scans to the same.
func TestServerMessagesDecode(t *testing.T) {
	for p, f := range formats {
		mp := p.Msgpack()
		parse := func(frame []byte) []byte {
			t.Helper()
			fr, n, err := p.ParseFrame(frame)
			if err != nil || n != len(frame) || !fr.Fin {
				t.Fatalf("%s: frame of %d bytes parses to %d: %v", p, len(frame), n, err)
			}
			return fr.Payload
		}
		for _, pub := range []*topic.Publication{
			{Topic: "a.b", Seq: 7, Data: []byte(`{"p":[1,2]}`)},
			{Topic: "book.a-topic-name-longer-than-31-bytes", Seq: 1 << 40, Snap: true, Data: []byte(`[5,"x"]`)},
		} {
			body := parse(codec.Frame(pub, f))
			sp, ok := ScanPublication(body, mp)
			m, err := Decode(body, mp)
			if !ok || string(sp.Topic) != pub.Topic || sp.Seq != pub.Seq || sp.Snap != pub.Snap || !bytes.Equal(sp.Data, m.Data) {
				t.Errorf("%s: scanned %+v %v from %q", p, sp, ok, Clip(body))
			}
			if err != nil || m.Kind != KindPublication || m.Topic != pub.Topic || m.Seq != pub.Seq || m.Snap != pub.Snap {
				t.Errorf("%s: decoded %+v %v", p, m, err)
			}
			var d any
			if err := m.DecodeData(&d); err != nil {
				t.Errorf("%s: data: %v", p, err)
			}
		}
		for _, tc := range []struct {
			frame []byte
			want  Message
		}{
			{codec.AppendLag(nil, f, "a", 3), Message{Kind: KindLag, Op: "lag", Topic: "a", Seq: 3}},
			{codec.AppendReset(nil, f, "a", "e1", 9), Message{Kind: KindReset, Op: "reset", Topic: "a", Epoch: "e1", Seq: 9}},
			{codec.Disconnect{Code: 4005, Reason: "slow"}.AppendClose(nil, f), Message{Kind: KindClose, Op: "close", Code: 4005, Reason: "slow"}},
			{codec.AppendError(nil, f, 0, true, 429, "too many"), Message{Kind: KindReply, HasID: true}},
			{codec.AppendError(nil, f, 0, false, 400, "bad"), Message{Kind: KindReply}},
			{codec.AppendEmptyReply(nil, f, 3, true), Message{Kind: KindReply, ID: 3, HasID: true}},
		} {
			body := parse(tc.frame)
			if _, ok := ScanPublication(body, mp); ok {
				t.Errorf("%s: %q scanned as a publication", p, Clip(body))
			}
			m, err := Decode(body, mp)
			if err != nil || m.Kind != tc.want.Kind || m.Op != tc.want.Op || m.Topic != tc.want.Topic || m.Seq != tc.want.Seq ||
				m.Epoch != tc.want.Epoch || m.Code != tc.want.Code || m.Reason != tc.want.Reason || m.ID != tc.want.ID || m.HasID != tc.want.HasID {
				t.Errorf("%s: %q decoded %+v %v, want %+v", p, Clip(body), m, err, tc.want)
			}
		}
		body := parse(codec.AppendError(nil, f, 5, true, 409, "already"))
		if m, _ := Decode(body, mp); m.Err == nil || m.Err.Code != 409 || m.Err.Msg != "already" || m.ID != 5 {
			t.Errorf("%s: error reply %+v", p, m)
		}
		body = parse(codec.AppendSubReply(nil, f, 7, true, []codec.SubResult{{Topic: "a", Epoch: "e1", Seq: 9, Rec: true}, {Topic: "b", Epoch: "e2"}}))
		m, _ := Decode(body, mp)
		var res map[string]SubResult
		if err := m.DecodeRes(&res); err != nil || res["a"] != (SubResult{"e1", 9, true}) || res["b"] != (SubResult{"e2", 0, false}) {
			t.Errorf("%s: sub reply %+v %v", p, res, err)
		}
	}
	if _, ok := ScanPublication(codec.Body(codec.AppendPingMessage(nil), codec.TCPMsgpack), true); ok {
		t.Error("the TCP heartbeat scanned as a publication")
	}
}

// The client's frames are masked, as RFC 6455 asks, and the server's
// frame reader and command decoder take them.
func TestCommandsReachTheServerDecoder(t *testing.T) {
	for _, size := range []int{0, 5, 125, 126, 70000} {
		payload := bytes.Repeat([]byte{'z'}, size)
		frame := AppendWSFrame(nil, ws.OpText, payload)
		if frame[1]&0x80 == 0 {
			t.Fatalf("size %d: not masked", size)
		}
		fr, n, err := codec.ReadWSFrame(append([]byte(nil), frame...), 0)
		if err != nil || n != len(frame) || !bytes.Equal(fr.Payload, payload) || fr.Op != ws.OpText || !fr.Fin {
			t.Errorf("size %d: server read %v %d %v", size, fr.Op, n, err)
		}
	}
	for p, f := range formats {
		body := func(frame []byte) []byte {
			t.Helper()
			if p == TCP {
				b, n, err := codec.ReadTCPFrame(frame, 0)
				if err != nil || n != len(frame) {
					t.Fatalf("tcp frame: %v", err)
				}
				return b
			}
			fr, n, err := codec.ReadWSFrame(frame, 0)
			if err != nil || n != len(frame) || fr.Op != map[bool]ws.OpCode{true: ws.OpBinary, false: ws.OpText}[p.Msgpack()] {
				t.Fatalf("%s frame: %v op %v", p, err, fr.Op)
			}
			return fr.Payload
		}
		var c codec.Command
		if err := codec.Decode(f, body(p.AppendSub(nil, 3, []string{"a", "b"}, map[string]Position{"a": {"e", 4}})), &c); err != nil ||
			c.Op != "sub" || c.ID != 3 || len(c.Topics) != 2 || c.Since["a"] != (topic.Position{Epoch: "e", Seq: 4}) {
			t.Errorf("%s: sub decoded %+v %v", p, c, err)
		}
		d := []byte(`{"x":1}`)
		if p.Msgpack() {
			d = []byte{0x81, 0xa1, 'x', 1}
		}
		if err := codec.Decode(f, body(p.AppendPub(nil, 4, "a.b", d, true)), &c); err != nil ||
			c.Op != "pub" || c.ID != 4 || c.Topic != "a.b" || c.Kind != "snap" || c.DataMsgpack != p.Msgpack() {
			t.Errorf("%s: pub decoded %+v %v", p, c, err)
		}
		if err := codec.Decode(f, body(p.AppendUnsub(nil, 5, []string{"a"})), &c); err != nil || c.Op != "unsub" || c.ID != 5 {
			t.Errorf("%s: unsub decoded %+v %v", p, c, err)
		}
		if err := codec.Decode(f, body(p.AppendAuth(nil, 0, "tok")), &c); err != nil || c.Op != "auth" || !c.HasID || c.Token != "tok" {
			t.Errorf("%s: auth decoded %+v %v", p, c, err)
		}
		if err := codec.Decode(f, body(p.AppendKeepalive(nil)), &c); err != nil || c.Op != "ping" || c.HasID {
			t.Errorf("%s: keepalive decoded %+v %v", p, c, err)
		}
	}
	tcp := TCP.AppendPing(nil, 4)
	if binary.BigEndian.Uint32(tcp) != uint32(len(tcp)-4) {
		t.Errorf("tcp frame length")
	}
}

func TestParseFramesIncomplete(t *testing.T) {
	frame := codec.AppendWSFrame(nil, ws.OpBinary, bytes.Repeat([]byte{1}, 300))
	for i := range len(frame) {
		if _, n, err := ParseWSFrame(frame[:i]); n != 0 || err != nil {
			t.Fatalf("%d of %d bytes: n %d err %v", i, len(frame), n, err)
		}
	}
	tcp := AppendTCPFrame(nil, []byte("hello"))
	for i := range len(tcp) {
		if _, n, err := ParseTCPFrame(tcp[:i]); n != 0 || err != nil {
			t.Fatalf("tcp %d bytes: n %d err %v", i, n, err)
		}
	}
	if _, _, err := ParseTCPFrame([]byte{0, 0, 0, 0}); err == nil {
		t.Errorf("a zero-length TCP frame parses")
	}
	if _, _, err := ParseWSFrame(AppendWSFrame(nil, ws.OpText, []byte("x"))); err == nil {
		t.Errorf("a masked frame from the server parses")
	}
}

// TestDecodeNullPayload: a publication whose d is null reads as null in
// either encoding (msgpack's decoder gives no bytes for nil), so that
// DecodeData and the CLI see the value the producer published.
func TestDecodeNullPayload(t *testing.T) {
	for _, tc := range []struct {
		body []byte
		mp   bool
		want string
	}{
		{[]byte(`{"t":"a","s":1,"d":null}`), false, "null"},
		{[]byte("\x83\xa1t\xa1a\xa1s\x01\xa1d\xc0"), true, "\xc0"},
	} {
		m, err := Decode(tc.body, tc.mp)
		if err != nil || m.Kind != KindPublication {
			t.Fatalf("%q: %v %v", tc.body, m.Kind, err)
		}
		if string(m.Data) != tc.want {
			t.Errorf("%q: d %q, want %q", tc.body, m.Data, tc.want)
		}
		var v any
		if err := m.DecodeData(&v); err != nil || v != nil {
			t.Errorf("%q: DecodeData gave %v, %v; want nil", tc.body, v, err)
		}
	}
}

// TestDecodeTrailingBytes: a body holds one message and nothing after it,
// in msgpack as in JSON.
func TestDecodeTrailingBytes(t *testing.T) {
	for _, tc := range []struct {
		body []byte
		mp   bool
	}{
		{[]byte(`{"t":"a","s":1,"d":1}x`), false},
		{[]byte("\x83\xa1t\xa1a\xa1s\x01\xa1d\x01\x01"), true},
	} {
		if m, err := Decode(tc.body, tc.mp); err == nil {
			t.Errorf("%q decoded as %+v, want an error for the byte after the message", tc.body, m)
		}
	}
}
