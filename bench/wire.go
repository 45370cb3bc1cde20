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

// payloadTimes reads the due time and the sent time (ns since the run's
// epoch) that the publisher put first in its payload [due, sent, pad]. A
// payload of the older shape [due, pad] has sent 0, and one of another
// shape has both 0. mp says the payload is msgpack; otherwise it is the
// JSON the server made of it, [due,sent,"xxx"].
func payloadTimes(d []byte, mp bool) (due, sent int64) {
	var u, s uint64
	var ok bool
	i := 1
	switch {
	case mp && len(d) > 1 && d[0]&0xf0 == 0x90 && d[0] != 0x90: // fixarray
		if u, i, ok = client.MsgpackUint(d, 1); !ok {
			return 0, 0
		}
		if d[0]&0x0f >= 3 {
			s, _, _ = client.MsgpackUint(d, i)
		}
	case !mp && len(d) > 1 && d[0] == '[':
		if u, i, ok = client.JSONUint(d, 1); !ok {
			return 0, 0
		}
		if i < len(d) && d[i] == ',' {
			s, _, _ = client.JSONUint(d, i+1) // not a number: the older shape
		}
	default:
		return 0, 0
	}
	return int64(u), int64(s)
}

// payloadDue is the due time of payloadTimes.
func payloadDue(d []byte, mp bool) int64 {
	due, _ := payloadTimes(d, mp)
	return due
}

// payloadSent is the sent time of payloadTimes: 0 when the payload has none.
func payloadSent(d []byte, mp bool) int64 {
	_, sent := payloadTimes(d, mp)
	return sent
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

// payloadTemplate is the msgpack payload [due, sent, pad] of size bytes
// (at least minPayload) with due and sent zero: the publisher writes the
// due time at dueAt and the sent time at sentAt, 8 bytes each.
func payloadTemplate(size int) []byte {
	size = max(size, minPayload)
	padLen := size - 2*9 - 1 - 1
	for padLen > 0 && 1+2*9+mpStrHeaderLen(padLen)+padLen > size {
		padLen--
	}
	b := append(make([]byte, 0, size), 0x93)
	b = appendMpUint64(b, 0)
	b = appendMpUint64(b, 0)
	return appendMpStr(b, string(bytes.Repeat([]byte{'x'}, padLen)))
}

// Where the publisher patches its times in a payload: after 0x93 0xcf, and
// after the due time and a second 0xcf.
const (
	dueAt  = 2
	sentAt = dueAt + 8 + 1
)

// minPayload is the smallest payload: a 3-array, two uint64 and an empty
// str.
const minPayload = 1 + 2*9 + 1
