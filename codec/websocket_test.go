package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

func TestReadWSFrameLengths(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
		for _, op := range []ws.OpCode{ws.OpText, ws.OpBinary} {
			payload := pattern(n)
			frame := clientFrame(t, true, op, payload)
			// Every strict prefix is incomplete and leaves the bytes alone.
			orig := append([]byte(nil), frame...)
			for k := 0; k < len(frame); k++ {
				fr, m, err := ReadWSFrame(frame[:k], 1<<20)
				if m != 0 || err != nil || fr.Payload != nil {
					t.Fatalf("len %d, prefix %d: n=%d err=%v", n, k, m, err)
				}
			}
			if !bytes.Equal(frame, orig) {
				t.Fatal("an incomplete read modified the buffer")
			}
			fr, m, err := ReadWSFrame(frame, 1<<20)
			if err != nil || m != len(frame) {
				t.Fatalf("len %d: n=%d err=%v", n, m, err)
			}
			if !fr.Fin || fr.Op != op || !bytes.Equal(fr.Payload, payload) {
				t.Fatalf("len %d: got fin=%v op=%v payload ok=%v", n, fr.Fin, fr.Op, bytes.Equal(fr.Payload, payload))
			}
			if n > 0 && &fr.Payload[0] != &frame[m-n] {
				t.Fatal("payload does not alias buf")
			}
		}
	}
}

func TestReadWSFrameSeveral(t *testing.T) {
	parts := []struct {
		fin     bool
		op      ws.OpCode
		payload string
	}{
		{true, ws.OpText, `{"op":"ping","id":1}`},
		{true, ws.OpPing, "are you there"},
		{false, ws.OpBinary, "first half "},
		{true, ws.OpPong, ""},
		{false, ws.OpContinuation, strings.Repeat("m", 300)},
		{true, ws.OpContinuation, "last"},
		{true, ws.OpClose, "\x03\xe8bye"},
	}
	var buf []byte
	for _, p := range parts {
		buf = append(buf, clientFrame(t, p.fin, p.op, []byte(p.payload))...)
	}
	buf = append(buf, clientFrame(t, true, ws.OpText, []byte("tail"))[:3]...) // an incomplete one after
	off := 0
	for i, p := range parts {
		fr, n, err := ReadWSFrame(buf[off:], 1024)
		if err != nil || n == 0 {
			t.Fatalf("frame %d: n=%d err=%v", i, n, err)
		}
		if fr.Fin != p.fin || fr.Op != p.op || string(fr.Payload) != p.payload {
			t.Fatalf("frame %d: got %v %v %q", i, fr.Fin, fr.Op, fr.Payload)
		}
		off += n
	}
	if _, n, err := ReadWSFrame(buf[off:], 1024); n != 0 || err != nil {
		t.Fatalf("trailing partial frame: n=%d err=%v", n, err)
	}
}

func TestReadWSFrameErrors(t *testing.T) {
	masked := func(b0, b1 byte, rest ...byte) []byte {
		return append([]byte{b0, b1 | 0x80}, rest...)
	}
	mask := []byte{1, 2, 3, 4}
	tests := []struct {
		name string
		buf  []byte
		code int
	}{
		{"unmasked text", []byte{0x81, 0x02, 'h', 'i'}, DisconnectProtocolError.Code},
		{"unmasked header only", []byte{0x82, 0x7f}, DisconnectProtocolError.Code},
		{"rsv1", masked(0xc1, 0, mask...), DisconnectProtocolError.Code},
		{"rsv2", masked(0xa1, 0, mask...), DisconnectProtocolError.Code},
		{"rsv3", masked(0x91, 0, mask...), DisconnectProtocolError.Code},
		{"opcode 3", masked(0x83, 0, mask...), DisconnectProtocolError.Code},
		{"opcode 7", masked(0x87, 0, mask...), DisconnectProtocolError.Code},
		{"opcode 0xb", masked(0x8b, 0, mask...), DisconnectProtocolError.Code},
		{"opcode 0xf", masked(0x8f, 0, mask...), DisconnectProtocolError.Code},
		{"ping not fin", masked(0x09, 0, mask...), DisconnectProtocolError.Code},
		{"close not fin", masked(0x08, 0, mask...), DisconnectProtocolError.Code},
		{"ping 126", masked(0x89, 126, 0, 126), DisconnectProtocolError.Code},
		{"pong 127", masked(0x8a, 127), DisconnectProtocolError.Code},
		{"close 126 header only", masked(0x88, 126), DisconnectProtocolError.Code},
		{"64-bit length top bit", masked(0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1), DisconnectProtocolError.Code},
		{"over max, 7-bit", masked(0x82, 101), DisconnectTooBig.Code},
		{"over max, 16-bit, header only", masked(0x81, 126, 0x01, 0x00), DisconnectTooBig.Code},
		{"over max, 64-bit, header only", masked(0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0), DisconnectTooBig.Code},
		{"over max continuation", masked(0x00, 126, 0xff, 0xff), DisconnectTooBig.Code},
	}
	for _, tt := range tests {
		_, n, err := ReadWSFrame(tt.buf, 100)
		var ce *CloseError
		if !errors.As(err, &ce) || ce.Code != tt.code || n != 0 || ce.Reason == "" {
			t.Errorf("%s: n=%d err=%v, want close %d", tt.name, n, err, tt.code)
			continue
		}
		if !strings.Contains(ce.Error(), itoa(tt.code)) {
			t.Errorf("%s: Error() %q", tt.name, ce.Error())
		}
	}
	// At the limit is fine.
	frame := clientFrame(t, true, ws.OpBinary, pattern(100))
	if _, n, err := ReadWSFrame(frame, 100); err != nil || n != len(frame) {
		t.Fatalf("payload at the limit: n=%d err=%v", n, err)
	}
}

func TestAppendWSFrame(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		for _, op := range []ws.OpCode{ws.OpPing, ws.OpPong, ws.OpBinary, ws.OpText} {
			if op.IsControl() && n > 125 {
				continue
			}
			payload := pattern(n)
			frame := AppendWSFrame([]byte("x"), op, payload)[1:]
			r := bytes.NewReader(frame)
			h, err := ws.ReadHeader(r)
			if err != nil {
				t.Fatal(err)
			}
			if !h.Fin || h.Masked || h.OpCode != op || h.Length != int64(n) || !bytes.Equal(frame[len(frame)-r.Len():], payload) {
				t.Fatalf("n=%d op=%v: header %+v", n, op, h)
			}
		}
	}
}

func TestAppendWSClose(t *testing.T) {
	for _, tt := range []struct {
		code   int
		reason string
		want   string
	}{
		{1000, "", ""},
		{4005, "slow client", "slow client"},
		{1002, strings.Repeat("a", 200), strings.Repeat("a", 123)},
		{4000, strings.Repeat("a", 122) + "é", strings.Repeat("a", 122)}, // é would end at byte 124
	} {
		frame := Disconnect{Code: tt.code, Reason: tt.reason}.AppendWSClose(nil)
		r := bytes.NewReader(frame)
		h, err := ws.ReadHeader(r)
		if err != nil {
			t.Fatal(err)
		}
		payload := frame[len(frame)-r.Len():]
		if !h.Fin || h.Masked || h.OpCode != ws.OpClose || h.Length != int64(len(payload)) || len(payload) > 125 {
			t.Fatalf("header %+v, payload %d", h, len(payload))
		}
		code, reason := ws.ParseCloseFrameData(payload)
		if int(code) != tt.code || reason != tt.want || !utf8.ValidString(reason) {
			t.Fatalf("close %d %q, want %d %q", code, reason, tt.code, tt.want)
		}
	}
}

func TestReadTCPFrame(t *testing.T) {
	frame := func(body string) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
	}
	one, two := frame("\x81\xa2op\xa4ping"), frame(strings.Repeat("z", 300))
	buf := append(append([]byte(nil), one...), two...)
	for k := 0; k < len(one); k++ {
		if body, n, err := ReadTCPFrame(buf[:k], 1000); body != nil || n != 0 || err != nil {
			t.Fatalf("prefix %d: n=%d err=%v", k, n, err)
		}
	}
	body, n, err := ReadTCPFrame(buf, 1000)
	if err != nil || n != len(one) || string(body) != "\x81\xa2op\xa4ping" {
		t.Fatalf("first: %q %d %v", body, n, err)
	}
	body, n2, err := ReadTCPFrame(buf[n:], 300)
	if err != nil || n2 != len(two) || string(body) != strings.Repeat("z", 300) {
		t.Fatalf("second (exactly max): %d %v", n2, err)
	}
	for _, tt := range []struct {
		buf  []byte
		code int
	}{
		{[]byte{0, 0, 0, 0}, CodeBadRequest},
		{[]byte{0, 0, 0, 0, 1, 2}, CodeBadRequest},
		{[]byte{0, 0, 1, 45}, CodeTooLarge}, // 301, known from the prefix alone
		{[]byte{0xff, 0xff, 0xff, 0xff}, CodeTooLarge},
	} {
		_, n, err := ReadTCPFrame(tt.buf, 300)
		var ce *Error
		if !errors.As(err, &ce) || ce.Code != tt.code || n != 0 {
			t.Errorf("%x: n=%d err=%v, want code %d", tt.buf, n, err, tt.code)
		}
	}
}
