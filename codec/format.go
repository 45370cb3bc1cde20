package codec

import "strconv"

// Format is the wire format of a connection's frames.
type Format uint8

const (
	// WSJSON is WebSocket text frames carrying JSON (subprotocol
	// tickfan.v1.json, the default).
	WSJSON Format = iota
	// WSMsgpack is WebSocket binary frames carrying msgpack
	// (tickfan.v1.msgpack).
	WSMsgpack
	// TCPMsgpack is a 4-byte big-endian length N, then N bytes of one
	// msgpack map.
	TCPMsgpack
)

// Msgpack reports whether frames of f carry msgpack.
func (f Format) Msgpack() bool { return f == WSMsgpack || f == TCPMsgpack }

// WebSocket reports whether frames of f are WebSocket frames.
func (f Format) WebSocket() bool { return f == WSJSON || f == WSMsgpack }

func (f Format) String() string {
	switch f {
	case WSJSON:
		return "ws-json"
	case WSMsgpack:
		return "ws-msgpack"
	case TCPMsgpack:
		return "tcp-msgpack"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}
