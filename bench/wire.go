package bench

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gobwas/ws"
	"github.com/vmihailenco/msgpack/v5"
)

// Proto is how a subscriber talks to the server.
type Proto string

// The transports of PROTOCOL.md.
const (
	ProtoWSJSON    Proto = "ws-json"    // WebSocket text frames, tickfan.v1.json
	ProtoWSMsgpack Proto = "ws-msgpack" // WebSocket binary frames, tickfan.v1.msgpack
	ProtoTCP       Proto = "tcp"        // 4-byte big-endian length, then a msgpack map
)

// ParseProto checks a --proto value.
func ParseProto(s string) (Proto, error) {
	switch p := Proto(s); p {
	case ProtoWSJSON, ProtoWSMsgpack, ProtoTCP:
		return p, nil
	}
	return "", fmt.Errorf("unknown proto %q: want ws-json, ws-msgpack or tcp", s)
}

func (p Proto) msgpack() bool { return p != ProtoWSJSON }
func (p Proto) ws() bool      { return p != ProtoTCP }

func (p Proto) subprotocol() string {
	if p == ProtoWSMsgpack {
		return "tickfan.v1.msgpack"
	}
	return "tickfan.v1.json"
}

// The frame parsers below return n == 0 when they need more bytes, and an
// error only when the stream is broken.

// serverFrame is one WebSocket frame from the server (never masked).
type serverFrame struct {
	op      ws.OpCode
	fin     bool
	payload []byte
}

// parseServerFrame reads one frame from the front of b; n == 0 means b
// does not hold all of it yet. The payload aliases b.
func parseServerFrame(b []byte) (fr serverFrame, n int, err error) {
	if len(b) < 2 {
		return fr, 0, nil
	}
	fr.fin = b[0]&0x80 != 0
	fr.op = ws.OpCode(b[0] & 0x0f)
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
		if length > 1<<30 {
			return fr, 0, fmt.Errorf("server frame of %d bytes", length)
		}
	}
	total := hdr + int(length)
	if len(b) < total {
		return fr, 0, nil
	}
	fr.payload = b[hdr:total]
	return fr, total, nil
}

// parseTCPFrame reads one length-prefixed frame from the front of b.
func parseTCPFrame(b []byte) (body []byte, n int, err error) {
	if len(b) < 4 {
		return nil, 0, nil
	}
	size := binary.BigEndian.Uint32(b)
	if size == 0 || size > 1<<30 {
		return nil, 0, fmt.Errorf("bad TCP frame length %d", size)
	}
	total := 4 + int(size)
	if len(b) < total {
		return nil, 0, nil
	}
	return b[4:total], total, nil
}

// appendClientFrame appends a masked FIN frame, as RFC 6455 requires of a
// client, written with gobwas/ws.
func appendClientFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	h := ws.Header{Fin: true, OpCode: op, Masked: true, Mask: ws.NewMask(), Length: int64(len(payload))}
	var hb bytes.Buffer
	_ = ws.WriteHeader(&hb, h) // a bytes.Buffer does not fail
	dst = append(dst, hb.Bytes()...)
	start := len(dst)
	dst = append(dst, payload...)
	ws.Cipher(dst[start:], h.Mask, 0)
	return dst
}

// appendTCPFrame appends body with its 4-byte length prefix.
func appendTCPFrame(dst, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...)
}

// frameCommand wraps a command body in p's framing.
func frameCommand(dst []byte, p Proto, body []byte) []byte {
	switch p {
	case ProtoTCP:
		return appendTCPFrame(dst, body)
	case ProtoWSMsgpack:
		return appendClientFrame(dst, ws.OpBinary, body)
	}
	return appendClientFrame(dst, ws.OpText, body)
}

// encodeCommand encodes a command map in p's format (JSON or msgpack).
func encodeCommand(p Proto, cmd map[string]any) []byte {
	var b []byte
	var err error
	if p.msgpack() {
		b, err = msgpack.Marshal(cmd)
	} else {
		b, err = json.Marshal(cmd)
	}
	if err != nil {
		panic(fmt.Sprintf("bench: encode %v: %v", cmd, err)) // only our own maps come here
	}
	return b
}

// Position is the last message a client holds of a topic (PROTOCOL.md
// "since").
type Position struct {
	E string `json:"e" msgpack:"e"`
	S uint64 `json:"s" msgpack:"s"`
}

// subCommand is {"op":"sub","id":id,"topics":[...],"since":{...}}.
func subCommand(p Proto, id uint64, topics []string, since map[string]Position) []byte {
	cmd := map[string]any{"op": "sub", "id": id, "topics": topics}
	if len(since) > 0 {
		cmd["since"] = since
	}
	return frameCommand(nil, p, encodeCommand(p, cmd))
}

// subResult is one topic of a sub reply.
type subResult struct {
	E   string `json:"e" msgpack:"e"`
	S   uint64 `json:"s" msgpack:"s"`
	Rec bool   `json:"rec" msgpack:"rec"`
}

// replyError is the "err" of a reply.
type replyError struct {
	Code int    `json:"code" msgpack:"code"`
	Msg  string `json:"msg" msgpack:"msg"`
}

func (e *replyError) Error() string { return fmt.Sprintf("error %d: %s", e.Code, e.Msg) }

// control is any message from the server that is not a publication:
// a reply, reset, lag, close or ping. Decoded with encoding/json or
// vmihailenco/msgpack; these are rare next to publications.
type control struct {
	ID     uint64             `json:"id" msgpack:"id"`
	Op     string             `json:"op" msgpack:"op"`
	T      string             `json:"t" msgpack:"t"`
	E      string             `json:"e" msgpack:"e"`
	S      uint64             `json:"s" msgpack:"s"`
	Code   int                `json:"code" msgpack:"code"`
	Reason string             `json:"reason" msgpack:"reason"`
	Err    *replyError        `json:"err" msgpack:"err"`
	ResJS  json.RawMessage    `json:"res" msgpack:"-"`
	ResMP  msgpack.RawMessage `json:"-" msgpack:"res"`
}

func decodeControl(body []byte, mp bool) (control, error) {
	var c control
	var err error
	if mp {
		err = msgpack.Unmarshal(body, &c)
	} else {
		err = json.Unmarshal(body, &c)
	}
	return c, err
}

// subResults decodes the res of a sub reply.
func (c *control) subResults(mp bool) (map[string]subResult, error) {
	var m map[string]subResult
	var err error
	if mp {
		err = msgpack.Unmarshal(c.ResMP, &m)
	} else {
		err = json.Unmarshal(c.ResJS, &m)
	}
	return m, err
}

// hasRes reports whether the message is a successful reply.
func (c *control) hasRes() bool { return len(c.ResJS) > 0 || len(c.ResMP) > 0 }

// pubFields are what a subscriber needs of a publication: its topic, seq
// and the due time the publisher put first in its payload.
type pubFields struct {
	topic []byte // aliases the frame
	seq   uint64
	due   int64 // ns since the run's epoch
}

// scanPublication reads a publication frame body without decoding it: the
// server writes {"t":..,"s":..,"d":..} in that order (codec.Frame), and
// the bench's payload is [due, pad]. ok is false for any other message.
func scanPublication(body []byte, mp bool) (pf pubFields, ok bool) {
	if mp {
		return scanPublicationMsgpack(body)
	}
	return scanPublicationJSON(body)
}

var (
	jsonPubPrefix = []byte(`{"t":"`)
	jsonSeqKey    = []byte(`","s":`)
	jsonDataKey   = []byte(`,"d":`)
)

func scanPublicationJSON(b []byte) (pf pubFields, ok bool) {
	if !bytes.HasPrefix(b, jsonPubPrefix) {
		return pf, false
	}
	i := len(jsonPubPrefix)
	end := bytes.IndexByte(b[i:], '"')
	if end < 0 {
		return pf, false
	}
	pf.topic = b[i : i+end]
	i += end
	if !bytes.HasPrefix(b[i:], jsonSeqKey) {
		return pf, false
	}
	i += len(jsonSeqKey)
	pf.seq, i, ok = jsonDigits(b, i)
	if !ok || !bytes.HasPrefix(b[i:], jsonDataKey) {
		return pf, false
	}
	i += len(jsonDataKey)
	if i < len(b) && b[i] == '[' {
		due, _, dok := jsonDigits(b, i+1)
		if dok {
			pf.due = int64(due)
		}
	}
	return pf, true
}

func jsonDigits(b []byte, i int) (v uint64, next int, ok bool) {
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		v = v*10 + uint64(b[i]-'0')
		i++
	}
	return v, i, i > start
}

func scanPublicationMsgpack(b []byte) (pf pubFields, ok bool) {
	if len(b) < 8 || (b[0] != 0x83 && b[0] != 0x84) || b[1] != 0xa1 || b[2] != 't' {
		return pf, false
	}
	i := 3
	var n int
	switch c := b[i]; {
	case c >= 0xa0 && c <= 0xbf:
		n, i = int(c&0x1f), i+1
	case c == 0xd9 && i+1 < len(b):
		n, i = int(b[i+1]), i+2
	default:
		return pf, false
	}
	if i+n+2 > len(b) {
		return pf, false
	}
	pf.topic = b[i : i+n]
	i += n
	if b[i] != 0xa1 || b[i+1] != 's' {
		return pf, false
	}
	pf.seq, i, ok = mpUint(b, i+2)
	if !ok || i+3 > len(b) || b[i] != 0xa1 || b[i+1] != 'd' {
		return pf, false
	}
	i += 2
	if b[i]&0xf0 == 0x90 && b[i] != 0x90 { // fixarray, the bench's [due, pad]
		if due, _, dok := mpUint(b, i+1); dok {
			pf.due = int64(due)
		}
	}
	return pf, true
}

// mpUint reads a msgpack unsigned integer at b[i].
func mpUint(b []byte, i int) (v uint64, next int, ok bool) {
	if i >= len(b) {
		return 0, i, false
	}
	c := b[i]
	if c <= 0x7f {
		return uint64(c), i + 1, true
	}
	var w int
	switch c {
	case 0xcc:
		w = 1
	case 0xcd:
		w = 2
	case 0xce:
		w = 4
	case 0xcf:
		w = 8
	default:
		return 0, i, false
	}
	if i+1+w > len(b) {
		return 0, i, false
	}
	for _, x := range b[i+1 : i+1+w] {
		v = v<<8 | uint64(x)
	}
	return v, i + 1 + w, true
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
