package codec

import (
	"encoding/binary"

	"github.com/gobwas/ws"
)

// Server frames are unmasked, so a WebSocket header is 2, 4 or 10 bytes.
const (
	wsMaxHeader = 10
	tcpHeader   = 4
)

// wsHeaderLen is the size of the header of an unmasked frame of n bytes.
func wsHeaderLen(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xffff:
		return 4
	}
	return 10
}

// putWSHeader writes the header of an unmasked FIN frame of n bytes into h,
// which is wsHeaderLen(n) bytes long.
func putWSHeader(h []byte, op ws.OpCode, n int) {
	h[0] = 0x80 | byte(op)
	switch len(h) {
	case 2:
		h[1] = byte(n)
	case 4:
		h[1] = 126
		binary.BigEndian.PutUint16(h[2:], uint16(n))
	default:
		h[1] = 127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
	}
}

func (f Format) wsOp() ws.OpCode {
	if f == WSJSON {
		return ws.OpText
	}
	return ws.OpBinary
}

// beginFrame reserves room for the smallest header of a frame of format f at
// the end of dst and returns dst and where the body starts; endFrame writes
// the header once the body is appended.
func beginFrame(dst []byte, f Format) ([]byte, int) {
	if f == TCPMsgpack {
		dst = append(dst, 0, 0, 0, 0)
	} else {
		dst = append(dst, 0, 0)
	}
	return dst, len(dst)
}

func endFrame(dst []byte, f Format, start int) []byte {
	n := len(dst) - start
	if f == TCPMsgpack {
		binary.BigEndian.PutUint32(dst[start-tcpHeader:], uint32(n))
		return dst
	}
	h := wsHeaderLen(n)
	if extra := h - 2; extra > 0 {
		var zero [wsMaxHeader]byte
		dst = append(dst, zero[:extra]...)
		copy(dst[start+extra:], dst[start:start+n])
	}
	putWSHeader(dst[start-2:start-2+h], f.wsOp(), n)
	return dst
}

// Body returns the body of a frame that Frame or an Append function made
// for format f: the frame without its WebSocket header or TCP length.
func Body(frame []byte, f Format) []byte {
	if f == TCPMsgpack {
		return frame[tcpHeader:]
	}
	switch frame[1] & 0x7f {
	case 126:
		return frame[4:]
	case 127:
		return frame[10:]
	}
	return frame[2:]
}
