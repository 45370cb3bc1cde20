package client

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/gobwas/ws"
)

// MaxFrame bounds a frame the client accepts from the server, in bytes: a
// length past it means the stream is not what the client thinks it is.
const MaxFrame = 1 << 30

// Frame is one frame from the server. Over TCP every frame is a whole
// message and is given the opcode of a binary WebSocket message.
type Frame struct {
	Op      ws.OpCode
	Fin     bool
	Payload []byte // aliases the bytes parsed
}

// The parsers below return n == 0 when b does not hold the whole frame yet
// (read more and call again with the same bytes), and an error only when
// the stream is broken. They never allocate.

// ParseFrame reads one frame of p from the front of b.
func (p Proto) ParseFrame(b []byte) (fr Frame, n int, err error) {
	if p.WebSocket() {
		return ParseWSFrame(b)
	}
	body, n, err := ParseTCPFrame(b)
	return Frame{Op: ws.OpBinary, Fin: true, Payload: body}, n, err
}

// ParseWSFrame reads one WebSocket frame from the server (RFC 6455 5.2;
// never masked) from the front of b.
func ParseWSFrame(b []byte) (fr Frame, n int, err error) {
	if len(b) < 2 {
		return fr, 0, nil
	}
	fr.Fin = b[0]&0x80 != 0
	fr.Op = ws.OpCode(b[0] & 0x0f)
	if b[1]&0x80 != 0 {
		return fr, 0, errors.New("server sent a masked frame")
	}
	hdr, length := 2, uint64(b[1]&0x7f)
	switch length {
	case 126:
		if len(b) < 4 {
			return fr, 0, nil
		}
		hdr, length = 4, uint64(binary.BigEndian.Uint16(b[2:4]))
	case 127:
		if len(b) < 10 {
			return fr, 0, nil
		}
		hdr, length = 10, binary.BigEndian.Uint64(b[2:10])
		if length > MaxFrame {
			return fr, 0, fmt.Errorf("server frame of %d bytes", length)
		}
	}
	total := hdr + int(length)
	if len(b) < total {
		return fr, 0, nil
	}
	fr.Payload = b[hdr:total]
	return fr, total, nil
}

// ParseTCPFrame reads one length-prefixed frame from the front of b and
// returns its body.
func ParseTCPFrame(b []byte) (body []byte, n int, err error) {
	if len(b) < 4 {
		return nil, 0, nil
	}
	size := binary.BigEndian.Uint32(b)
	if size == 0 || size > MaxFrame {
		if string(b[:4]) == "HTTP" {
			return nil, 0, errors.New("the server answered in HTTP: the address is not a tickfan TCP listener")
		}
		return nil, 0, fmt.Errorf("bad TCP frame length %d", size)
	}
	total := 4 + int(size)
	if len(b) < total {
		return nil, 0, nil
	}
	return b[4:total], total, nil
}

// AppendWSFrame appends a masked FIN frame, as RFC 6455 5.3 requires of a
// client, written with gobwas/ws.
func AppendWSFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	h := ws.Header{Fin: true, OpCode: op, Masked: true, Mask: ws.NewMask(), Length: int64(len(payload))}
	var hb bytes.Buffer
	_ = ws.WriteHeader(&hb, h) // a bytes.Buffer does not fail
	dst = append(dst, hb.Bytes()...)
	start := len(dst)
	dst = append(dst, payload...)
	ws.Cipher(dst[start:], h.Mask, 0)
	return dst
}

// AppendTCPFrame appends body with its 4-byte big-endian length.
func AppendTCPFrame(dst, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...)
}

// AppendFrame appends a command body framed for p: a TCP frame, or a
// masked text (JSON) or binary (msgpack) WebSocket frame.
func (p Proto) AppendFrame(dst, body []byte) []byte {
	switch p {
	case TCP:
		return AppendTCPFrame(dst, body)
	case WSMsgpack:
		return AppendWSFrame(dst, ws.OpBinary, body)
	}
	return AppendWSFrame(dst, ws.OpText, body)
}

// AppendPong appends the answer to a WebSocket ping: a pong with its
// payload (RFC 6455 5.5.3).
func AppendPong(dst, payload []byte) []byte { return AppendWSFrame(dst, ws.OpPong, payload) }
