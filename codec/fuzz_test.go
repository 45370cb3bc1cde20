package codec

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/vmihailenco/msgpack/v5"
)

func FuzzReadWSFrame(f *testing.F) {
	f.Add(clientFrame(f, true, ws.OpText, []byte(`{"op":"ping"}`)))
	f.Add(clientFrame(f, false, ws.OpBinary, pattern(200)))
	f.Add(clientFrame(f, true, ws.OpPing, []byte("hb")))
	f.Add(clientFrame(f, true, ws.OpClose, []byte{0x03, 0xe8}))
	f.Add(append(clientFrame(f, true, ws.OpText, nil), clientFrame(f, true, ws.OpPong, []byte("x"))...))
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'})
	f.Add([]byte{0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0})
	f.Add([]byte{0x89, 0xfe, 0, 200})
	const maxPayload = 1024
	f.Fuzz(func(t *testing.T, buf []byte) {
		orig := append([]byte(nil), buf...)
		fr, n, err := ReadWSFrame(buf, maxPayload)
		if err != nil {
			var ce *CloseError
			if !errors.As(err, &ce) || (ce.Code != DisconnectProtocolError.Code && ce.Code != DisconnectTooBig.Code) || n != 0 {
				t.Fatalf("err %v, n %d", err, n)
			}
			return
		}
		// What gobwas/ws reads from the same bytes.
		r := bytes.NewReader(orig)
		h, herr := ws.ReadHeader(r)
		if n == 0 {
			if herr == nil && int64(len(orig)-r.Len())+h.Length <= int64(len(orig)) {
				t.Fatalf("complete frame (header %+v) reported incomplete", h)
			}
			if !bytes.Equal(buf, orig) {
				t.Fatal("incomplete read modified buf")
			}
			return
		}
		if n > len(buf) || herr != nil {
			t.Fatalf("n %d of %d, header err %v", n, len(buf), herr)
		}
		hdr := len(orig) - r.Len()
		if !h.Masked || h.Rsv != 0 || h.Fin != fr.Fin || h.OpCode != fr.Op || int64(len(fr.Payload)) != h.Length || hdr+len(fr.Payload) != n {
			t.Fatalf("frame %+v n %d disagrees with header %+v", fr, n, h)
		}
		if len(fr.Payload) > maxPayload || fr.Op.IsControl() && (!fr.Fin || len(fr.Payload) > 125) {
			t.Fatalf("accepted a frame RFC 6455 forbids: %+v", h)
		}
		want := append([]byte(nil), orig[hdr:n]...)
		ws.Cipher(want, h.Mask, 0)
		if !bytes.Equal(fr.Payload, want) || (len(want) > 0 && &fr.Payload[0] != &buf[hdr]) {
			t.Fatal("payload not unmasked in place")
		}
		if _, m, err := ReadWSFrame(append([]byte(nil), orig[:n-1]...), maxPayload); m != 0 || err != nil {
			t.Fatalf("a prefix of a frame gave n=%d err=%v", m, err)
		}
	})
}

func FuzzReadTCPFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 3, 0x81, 0xa1, 'x'})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 0, 4, 1, 0})
	f.Add([]byte{0, 0, 0, 2, 1, 2, 0, 0, 0, 1, 7})
	f.Add([]byte{0, 0})
	const maxFrame = 1024
	f.Fuzz(func(t *testing.T, buf []byte) {
		body, n, err := ReadTCPFrame(buf, maxFrame)
		if len(buf) < 4 {
			if n != 0 || err != nil || body != nil {
				t.Fatalf("short buf: n=%d err=%v", n, err)
			}
			return
		}
		size := int(binary.BigEndian.Uint32(buf))
		var ce *Error
		switch {
		case size == 0:
			if !errors.As(err, &ce) || ce.Code != CodeBadRequest || n != 0 {
				t.Fatalf("length 0: n=%d err=%v", n, err)
			}
		case size > maxFrame:
			if !errors.As(err, &ce) || ce.Code != CodeTooLarge || n != 0 {
				t.Fatalf("length %d: n=%d err=%v", size, n, err)
			}
		case len(buf) < 4+size:
			if n != 0 || err != nil || body != nil {
				t.Fatalf("incomplete: n=%d err=%v", n, err)
			}
		default:
			if err != nil || n != 4+size || !bytes.Equal(body, buf[4:n]) || n > len(buf) {
				t.Fatalf("complete: n=%d err=%v", n, err)
			}
		}
	})
}

var commandSeedsJSON = []string{
	`{"op":"sub","id":1,"topics":["a","b.c"],"since":{"a":{"e":"x","s":3}}}`,
	`{"op":"pull","id":2,"t":"a","since":{"e":"x","s":3},"limit":10}`,
	`{"op":"pub","id":3,"t":"a","d":{"p":[1.5,-2,"\u00e9"]},"k":"snap"}`,
	`{"op":"auth","id":4,"token":"a.b.c"}`,
	`{"op":"ping"}`,
	`{"since":{"e":"x"},"op":"pull"}`,
	`[1]`,
	`{"id":-1}`,
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range commandSeedsJSON {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var cmd Command
		err := Decode(WSJSON, body, &cmd)
		var ref map[string]json.RawMessage
		refErr := json.Unmarshal(body, &ref)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.Code != CodeBadRequest {
				t.Fatalf("error %v is not a 400", err)
			}
			return
		}
		if refErr != nil {
			t.Fatalf("decoded what encoding/json refuses (%v): %+v", refErr, cmd)
		}
		// Each field agrees with encoding/json.
		for key, dst := range map[string]any{"op": &cmd.Op, "t": &cmd.Topic, "k": &cmd.Kind, "token": &cmd.Token, "id": &cmd.ID} {
			raw, ok := ref[key]
			if !ok || string(raw) == "null" {
				continue
			}
			want := reflect.New(reflect.TypeOf(dst).Elem())
			if err := json.Unmarshal(raw, want.Interface()); err != nil {
				t.Fatalf("%q: encoding/json refuses %s: %v", key, raw, err)
			}
			if !reflect.DeepEqual(want.Elem().Interface(), reflect.ValueOf(dst).Elem().Interface()) {
				t.Fatalf("%q: got %v, encoding/json %v", key, reflect.ValueOf(dst).Elem(), want.Elem())
			}
		}
		if cmd.Data != nil && !ValidJSON(cmd.Data) {
			t.Fatalf("Data %q is not valid JSON", cmd.Data)
		}
		checkReencode(t, WSJSON, &cmd)
	})
}

func FuzzDecodeMsgpack(f *testing.F) {
	for _, s := range commandSeedsJSON {
		mp, err := JSONToMsgpack(nil, []byte(s))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(mp)
	}
	f.Add([]byte{0x81, 0xa2, 'i', 'd', 0xd3, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{0x82, 0xa2, 'o', 'p', 0xa3, 'p', 'u', 'b', 0xa1, 'd', 0xc4, 0x01, 0xff})
	f.Fuzz(func(t *testing.T, body []byte) {
		var cmd Command
		if err := Decode(TCPMsgpack, body, &cmd); err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.Code != CodeBadRequest {
				t.Fatalf("error %v is not a 400", err)
			}
			return
		}
		if cmd.Data != nil {
			if !ValidMsgpack(cmd.Data) {
				t.Fatalf("Data %x is not valid msgpack", cmd.Data)
			}
			if _, err := MsgpackToJSON(nil, cmd.Data); err != nil {
				t.Fatalf("Data %x does not convert: %v", cmd.Data, err)
			}
		}
		checkReencode(t, TCPMsgpack, &cmd)
	})
}

// checkReencode encodes cmd again with the reference encoders and checks
// that Decode gives the same command back.
func checkReencode(t *testing.T, f Format, cmd *Command) {
	t.Helper()
	m := kv{}
	m = append(m, "op", cmd.Op)
	if cmd.HasID {
		m = append(m, "id", cmd.ID)
	}
	m = append(m, "t", cmd.Topic, "k", cmd.Kind, "token", cmd.Token, "limit", cmd.Limit)
	if cmd.Topics != nil {
		m = append(m, "topics", cmd.Topics)
	}
	if cmd.From != nil {
		m = append(m, "since", kv{"e", cmd.From.Epoch, "s", cmd.From.Seq})
	}
	if cmd.Since != nil {
		since := kv{}
		for k, p := range cmd.Since {
			since = append(since, k, kv{"e", p.Epoch, "s", p.Seq})
		}
		m = append(m, "since", since)
	}
	if cmd.Data != nil {
		if f.Msgpack() {
			m = append(m, "d", rawMsgpack(cmd.Data))
		} else {
			m = append(m, "d", rawJSON(cmd.Data))
		}
	}
	var body []byte
	if f.Msgpack() {
		body = marshal(t, f, m)
	} else {
		var err error
		if body, err = m.MarshalJSON(); err != nil {
			t.Fatal(err)
		}
	}
	var again Command
	if err := Decode(f, body, &again); err != nil {
		t.Fatalf("re-encoded %q does not decode: %v", body, err)
	}
	a, b := *cmd, again
	a.since, b.since = nil, nil
	if len(a.Topics) == 0 && len(b.Topics) == 0 {
		a.Topics, b.Topics = nil, nil
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("re-encoded command differs:\n%+v\n%+v", a, b)
	}
}

func FuzzHandshake(f *testing.F) {
	f.Add([]byte(upgradeRequest("/ws", "Sec-WebSocket-Protocol: tickfan.v1.msgpack, tickfan.v1.json")))
	f.Add([]byte(upgradeRequest("/ws?x=1")))
	f.Add([]byte(upgradeRequest("/nope")))
	f.Add([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n"))
	f.Add(append([]byte(upgradeRequest("/ws")), 0x81, 0x80, 1, 2, 3, 4))
	f.Add([]byte("\x16\x03\x01"))
	f.Fuzz(func(t *testing.T, buf []byte) {
		r := Handshake(buf, "/ws")
		end := bytes.Index(buf, []byte("\r\n\r\n"))
		switch {
		case r.N < 0 || r.N > len(buf):
			t.Fatalf("N %d of %d", r.N, len(buf))
		case r.Err == nil && r.N == 0:
			if end >= 0 || len(buf) > MaxHandshakeSize || r.Response != nil {
				t.Fatalf("waits on a complete or oversized request: %+v", r)
			}
		case r.Err == nil:
			if r.N != end+4 || !bytes.HasPrefix(r.Response, []byte("HTTP/1.1 101 ")) || (r.Format != WSJSON && r.Format != WSMsgpack) {
				t.Fatalf("accepted: %+v", r)
			}
			hasProto := bytes.Contains(r.Response, []byte("Sec-WebSocket-Protocol:"))
			if r.Format == WSMsgpack && !bytes.Contains(r.Response, []byte("Sec-WebSocket-Protocol: tickfan.v1.msgpack\r\n")) ||
				hasProto && !bytes.Contains(r.Response, []byte("Sec-WebSocket-Protocol: tickfan.v1.")) {
				t.Fatalf("subprotocol answer %q", r.Response)
			}
			// The same request alone gives the same answer.
			if again := Handshake(buf[:r.N], "/ws"); again.Err != nil || again.N != r.N || !bytes.Equal(again.Response, r.Response) {
				t.Fatalf("request alone: %+v", again)
			}
		default:
			if !bytes.HasPrefix(r.Response, []byte("HTTP/1.1 4")) && !bytes.HasPrefix(r.Response, []byte("HTTP/1.1 5")) ||
				!bytes.Contains(r.Response, []byte("\r\nConnection: close\r\n")) || r.N == 0 {
				t.Fatalf("refused: %q", r.Response)
			}
			if strings.Contains(string(r.Response), "101") && bytes.HasPrefix(r.Response, []byte("HTTP/1.1 101")) {
				t.Fatal("refusal with a 101")
			}
		}
	})
}

func FuzzPayloadConversion(f *testing.F) {
	for _, s := range []string{
		`{"b":[[65000.5,1.25]],"n":-3,"u":18446744073709551615,"big":123456789012345678901234}`,
		`"\ud83d\ude00\u2028\"\\"`, `[1e-7,1e21,-0,0.1]`, `null`, `{"a":{"b":{}}}`, `1e400`,
	} {
		f.Add([]byte(s))
	}
	f.Add([]byte{0x82, 0x01, 0xc4, 0x01, 0xff, 0xc3, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x92, 0xca, 0x7f, 0x80, 0, 0, 0xd4, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		mp, err := JSONToMsgpack(nil, data)
		// The converter validates on its own; it must agree with json.Valid.
		if want := json.Valid(data) && jsonNumbersFinite(data); (err == nil) != want {
			t.Fatalf("JSONToMsgpack(%q) err %v, json.Valid and finite: %v", data, err, want)
		}
		if err == nil {
			if !ValidMsgpack(mp) {
				t.Fatalf("JSONToMsgpack(%q) = %x, not valid msgpack", data, mp)
			}
			back, err := MsgpackToJSON(nil, mp)
			if err != nil || !ValidJSON(back) {
				t.Fatalf("MsgpackToJSON(%x) = %q, %v", mp, back, err)
			}
			want, err1 := decodeValue(data, false)
			got, err2 := decodeValue(back, false)
			ref, err3 := decodeValue(mp, true)
			if err1 != nil || err2 != nil || err3 != nil {
				t.Fatalf("reference decode: %v %v %v", err1, err2, err3)
			}
			mustEqual(t, got, want)
			mustEqual(t, ref, want)
		}
		if ValidMsgpack(data) {
			js, err := MsgpackToJSON(nil, data)
			if err != nil || !ValidJSON(js) {
				t.Fatalf("MsgpackToJSON(%x) = %q, %v", data, js, err)
			}
			// The reference decoder agrees the value is whole.
			dec := msgpack.NewDecoder(bytes.NewReader(data))
			if err := dec.Skip(); err != nil {
				t.Fatalf("msgpack.Skip(%x): %v", data, err)
			}
			mp, err := JSONToMsgpack(nil, js)
			if err != nil {
				t.Fatal(err)
			}
			again, err := MsgpackToJSON(nil, mp)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := decodeValue(js, false)
			b, _ := decodeValue(again, false)
			mustEqual(t, b, a)
		} else if _, err := MsgpackToJSON(nil, data); err == nil {
			t.Fatalf("MsgpackToJSON accepted %x", data)
		}
	})
}
