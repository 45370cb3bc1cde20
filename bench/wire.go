package bench

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/tickfan/tickfan/client"
)

// Proto is how a subscriber talks to the server: the client's transports.
type Proto = client.Proto

// The transports of PROTOCOL.md.
const (
	ProtoWSJSON    = client.WSJSON    // WebSocket text frames, tickfan.v1.json
	ProtoWSMsgpack = client.WSMsgpack // WebSocket binary frames, tickfan.v1.msgpack
	ProtoTCP       = client.TCP       // 4-byte big-endian length, then a msgpack map
)

// ParseProto checks a --proto value.
func ParseProto(s string) (Proto, error) { return client.ParseProto(s) }

// dialTimeout bounds one connection's dial and handshake.
const dialTimeout = 10 * time.Second

// dialConfig is how the bench reaches the server with proto; rcvbuf > 0
// sets the socket's receive buffer before it connects.
func (c *Config) dialConfig(proto Proto, rcvbuf int) client.Config {
	addr := c.WSURL
	if !proto.WebSocket() {
		addr = c.TCPAddr
	}
	return client.Config{Proto: proto, Addr: addr, DialTimeout: dialTimeout, RcvBuf: rcvbuf}
}

// payloadDue reads the due time (ns since the run's epoch) that the
// publisher put first in its payload [due, pad]; 0 for a payload of
// another shape. mp says the payload is msgpack.
func payloadDue(d []byte, mp bool) int64 {
	var due uint64
	var ok bool
	switch {
	case mp && len(d) > 1 && d[0]&0xf0 == 0x90 && d[0] != 0x90: // fixarray
		due, _, ok = client.MsgpackUint(d, 1)
	case !mp && len(d) > 1 && d[0] == '[':
		due, _, ok = client.JSONUint(d, 1)
	}
	if !ok {
		return 0
	}
	return int64(due)
}

// msgpack appenders for the publisher's hot path, which encodes a pub
// command per publication without allocating.

func appendMpStr(dst []byte, s string) []byte {
	switch n := len(s); {
	case n <= 31:
		dst = append(dst, 0xa0|byte(n))
	case n <= 0xff:
		dst = append(dst, 0xd9, byte(n))
	case n <= 0xffff:
		dst = append(dst, 0xda, byte(n>>8), byte(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, 0xdb), uint32(n))
	}
	return append(dst, s...)
}

func appendMpUint64(dst []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, 0xcf), v)
}

func mpStrHeaderLen(n int) int {
	switch {
	case n <= 31:
		return 1
	case n <= 0xff:
		return 2
	case n <= 0xffff:
		return 3
	}
	return 5
}

// payloadTemplate is the msgpack payload [due, pad] of size bytes (at least
// 11) with due zero; the publisher writes the due time into its bytes 2..9.
func payloadTemplate(size int) []byte {
	size = max(size, minPayload)
	padLen := size - 10 - 1
	for padLen > 0 && 10+mpStrHeaderLen(padLen)+padLen > size {
		padLen--
	}
	b := append(make([]byte, 0, size), 0x92)
	b = appendMpUint64(b, 0)
	return appendMpStr(b, string(bytes.Repeat([]byte{'x'}, padLen)))
}

// minPayload is the smallest payload: a 2-array, a uint64 and an empty str.
const minPayload = 11
