package codec

import (
	"encoding/binary"
	"math"
	"strconv"

	"github.com/gobwas/ws"
)

// CloseError is a WebSocket protocol violation by the client: the server
// closes with its Disconnect (a close frame alone, no op close, as
// PROTOCOL.md says).
type CloseError struct {
	Disconnect
}

func (e *CloseError) Error() string {
	return "websocket close " + strconv.Itoa(e.Code) + ": " + e.Reason
}

func closeError(d Disconnect, reason string) error { return &CloseError{d.WithReason(reason)} }

// WSFrame is one frame read from a client.
type WSFrame struct {
	Fin     bool
	Op      ws.OpCode
	Payload []byte
}

// ReadWSFrame parses one client frame from the front of buf and returns it
// and its size n. n == 0 with a nil error means buf does not hold the whole
// frame yet: read more and call again with the same bytes. The payload is
// unmasked in place and aliases buf, so a complete frame must be parsed
// only once. A frame that breaks RFC 6455 gives a *CloseError: 1002 for an
// unmasked frame, RSV bits (no extension is negotiated), a reserved opcode,
// or a fragmented or oversized control frame; 1009 for a payload over
// maxPayload (0 or less: no limit), known from the header alone. The payload
// of a text frame is not checked for UTF-8 here: a fragmented message can
// only be checked whole.
func ReadWSFrame(buf []byte, maxPayload int) (fr WSFrame, n int, err error) {
	if len(buf) < 2 {
		return fr, 0, nil
	}
	b0, b1 := buf[0], buf[1]
	fr.Fin = b0&0x80 != 0
	fr.Op = ws.OpCode(b0 & 0x0f)
	switch {
	case b0&0x70 != 0:
		return fr, 0, closeError(DisconnectProtocolError, "reserved bits set")
	case !validOpCode(fr.Op):
		return fr, 0, closeError(DisconnectProtocolError, "reserved opcode "+strconv.Itoa(int(fr.Op)))
	case b1&0x80 == 0:
		return fr, 0, closeError(DisconnectProtocolError, "frame from client is not masked")
	}
	length := uint64(b1 & 0x7f)
	if fr.Op.IsControl() {
		if !fr.Fin {
			return fr, 0, closeError(DisconnectProtocolError, "fragmented control frame")
		}
		if length > 125 {
			return fr, 0, closeError(DisconnectProtocolError, "control frame payload over 125 bytes")
		}
	}
	hdr := 2
	switch length {
	case 126:
		if len(buf) < 4 {
			return fr, 0, nil
		}
		length = uint64(binary.BigEndian.Uint16(buf[2:4]))
		hdr = 4
	case 127:
		if len(buf) < 10 {
			return fr, 0, nil
		}
		length = binary.BigEndian.Uint64(buf[2:10])
		if length > math.MaxInt64 {
			return fr, 0, closeError(DisconnectProtocolError, "payload length has its top bit set")
		}
		hdr = 10
	}
	if maxPayload > 0 && length > uint64(maxPayload) || length > uint64(math.MaxInt-wsMaxHeader-4) {
		return fr, 0, closeError(DisconnectTooBig, "frame payload of "+strconv.FormatUint(length, 10)+" bytes is over the limit")
	}
	total := hdr + 4 + int(length)
	if len(buf) < total {
		return fr, 0, nil
	}
	var mask [4]byte
	copy(mask[:], buf[hdr:hdr+4])
	fr.Payload = buf[hdr+4 : total]
	ws.Cipher(fr.Payload, mask, 0)
	return fr, total, nil
}

func validOpCode(op ws.OpCode) bool {
	switch op {
	case ws.OpContinuation, ws.OpText, ws.OpBinary, ws.OpClose, ws.OpPing, ws.OpPong:
		return true
	}
	return false
}

// AppendWSFrame appends one unmasked FIN frame of opcode op carrying
// payload, as the server sends them (pong, ping, binary...). A control
// frame's payload must be at most 125 bytes; a pong echoing a ping that
// ReadWSFrame accepted always is.
func AppendWSFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	var hdr [wsMaxHeader]byte
	h := hdr[:wsHeaderLen(len(payload))]
	putWSHeader(h, op, len(payload))
	dst = append(dst, h...)
	return append(dst, payload...)
}
