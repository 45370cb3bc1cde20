package codec

import (
	"bytes"
	"testing"

	"github.com/gobwas/ws"
)

// TestDisconnectCodes pins every close code PROTOCOL.md defines, and the
// RFC 6455 ones the server sends, with its reason and reconnect advice.
func TestDisconnectCodes(t *testing.T) {
	tests := []struct {
		d         Disconnect
		code      int
		reconnect bool
	}{
		{DisconnectShutdown, 4000, true},
		{DisconnectIdle, 4001, true},
		{DisconnectTokenExpired, 4002, true},
		{DisconnectForbidden, 4003, false},
		{DisconnectBadRequest, 4004, false},
		{DisconnectSlowClient, 4005, true},
		{DisconnectTooManyConns, 4006, true},
		{DisconnectServerDraining, 4007, true},
		{DisconnectNormal, DisconnectNormal.Code, true},
		{DisconnectProtocolError, DisconnectProtocolError.Code, false},
		{DisconnectInvalidUTF8, DisconnectInvalidUTF8.Code, false},
		{DisconnectTooBig, DisconnectTooBig.Code, false},
	}
	if len(tests) != len(disconnects) {
		t.Fatalf("%d codes tested, %d named", len(tests), len(disconnects))
	}
	for _, tt := range tests {
		if tt.d.Code != tt.code || tt.d.Reconnect != tt.reconnect || tt.d.Reason == "" || len(tt.d.Reason) > maxCloseReason {
			t.Errorf("%v: want code %d reconnect %v and a reason that fits a close frame", tt.d, tt.code, tt.reconnect)
		}
		if got, ok := DisconnectOf(tt.code); !ok || got != tt.d {
			t.Errorf("DisconnectOf(%d) = %v, %v", tt.code, got, ok)
		}
	}
	if got, ok := DisconnectOf(4999); ok || got.Code != 4999 || got.Reconnect {
		t.Errorf("DisconnectOf(4999) = %+v, %v", got, ok)
	}
	// The reasons the server sent before the named values keep their text.
	if DisconnectServerDraining.Reason != "server draining" || DisconnectSlowClient.Reason != "slow client" ||
		DisconnectIdle.Reason != "idle timeout" || DisconnectTokenExpired.Reason != "token expired" ||
		DisconnectTooManyConns.Reason != "too many connections" {
		t.Error("a default reason changed")
	}
}

func TestDisconnectWithReason(t *testing.T) {
	d := DisconnectBadRequest.WithReason("command rate abuse")
	if d.Code != 4004 || d.Reason != "command rate abuse" || d.Reconnect {
		t.Fatalf("WithReason: %+v", d)
	}
	if DisconnectBadRequest.Reason != "bad request" {
		t.Fatalf("WithReason changed the named value: %+v", DisconnectBadRequest)
	}
}

// TestDisconnectFrames: the op close and the close frame carry the same
// code and reason.
func TestDisconnectFrames(t *testing.T) {
	d := DisconnectSlowClient.WithReason("slow client: \"x\" é")
	for _, f := range allFormats {
		op := d.AppendClose([]byte("prev"), f)
		if !bytes.HasPrefix(op, []byte("prev")) {
			t.Fatalf("%v: AppendClose did not append", f)
		}
		op = op[4:]
		mustEqual(t, decodeBody(t, splitFrame(t, op, f), f), obj{"op": "close", "code": uint64(d.Code), "reason": d.Reason})

		all := d.AppendCloseFrames(nil, f)
		if !bytes.HasPrefix(all, op) {
			t.Fatalf("%v: AppendCloseFrames does not start with the op close", f)
		}
		rest := all[len(op):]
		if !f.WebSocket() {
			if len(rest) != 0 {
				t.Errorf("%v: %d bytes after the op close", f, len(rest))
			}
			continue
		}
		r := bytes.NewReader(rest)
		h, err := ws.ReadHeader(r)
		if err != nil || h.OpCode != ws.OpClose || !h.Fin || int(h.Length) != r.Len() {
			t.Fatalf("%v: close frame %+v, %v", f, h, err)
		}
		code, reason := ws.ParseCloseFrameData(rest[len(rest)-r.Len():])
		if int(code) != d.Code || reason != d.Reason {
			t.Errorf("%v: close frame %d %q, op close %d %q", f, code, reason, d.Code, d.Reason)
		}
		if alone := d.AppendWSClose(nil); !bytes.Equal(alone, rest) {
			t.Errorf("AppendWSClose %q, in AppendCloseFrames %q", alone, rest)
		}
	}
}

func TestCloseErrorCarriesDisconnect(t *testing.T) {
	_, _, err := ReadWSFrame([]byte{0x81, 0x02, 'h', 'i'}, 0) // unmasked
	ce, ok := err.(*CloseError)
	if !ok || ce.Disconnect.Code != DisconnectProtocolError.Code || ce.Reconnect || ce.Reason == DisconnectProtocolError.Reason {
		t.Fatalf("err %#v, want a 1002 with its own reason", err)
	}
}
