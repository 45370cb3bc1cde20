package replay

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/topic"
)

// WebSocket opcodes (RFC 6455, 5.2).
const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
)

// websocket skips the upgrade request and parses the client's frames,
// which RFC 6455 (5.3) requires to be masked.
func (x *extractor) websocket(d []byte) {
	hdrEnd := bytes.Index(d, []byte("\r\n\r\n"))
	if hdrEnd < 0 {
		x.problem("truncated", "WebSocket upgrade request without its end")
		return
	}
	off := hdrEnd + 4
	var msg []byte // a fragmented message so far
	var msgOp byte
	for off < len(d) {
		f, n, why := parseClientFrame(d[off:])
		if why != "" {
			x.problem(frameProblem(n), "WebSocket frame at offset %d: %s", off, why)
			return
		}
		off += n
		switch {
		case f.op == opClose:
			return
		case f.op >= 0x8: // ping, pong: not replayed
			continue
		case f.op == opCont:
			if msgOp == 0 {
				x.problem("bad frame", "continuation frame at offset %d without a first frame", off-n)
				return
			}
			msg = append(msg, f.payload...)
		case f.op == opText || f.op == opBinary:
			msgOp, msg = f.op, append(msg[:0], f.payload...)
		default:
			x.problem("bad frame", "opcode %#x at offset %d", f.op, off-n)
			return
		}
		if !f.fin {
			continue
		}
		format := codec.WSJSON
		if msgOp == opBinary {
			format = codec.WSMsgpack
			x.st.Msgpack = true
		}
		x.command(format, msg, off)
		msgOp, msg = 0, msg[:0]
	}
}

type wsFrame struct {
	fin     bool
	op      byte
	payload []byte // unmasked, a copy
}

// parseClientFrame parses one masked frame at the start of b. It returns
// the frame and its length, or why it cannot (n -1: b ends inside it).
func parseClientFrame(b []byte) (f wsFrame, n int, why string) {
	if len(b) < 2 {
		return f, -1, "header cut"
	}
	f.fin = b[0]&0x80 != 0
	f.op = b[0] & 0x0f
	if b[0]&0x70 != 0 {
		return f, 0, "RSV bits set (a compressed frame?): not parsed"
	}
	if b[1]&0x80 == 0 {
		return f, 0, "unmasked: not a client frame"
	}
	size := uint64(b[1] & 0x7f)
	i := 2
	switch size {
	case 126:
		if len(b) < 4 {
			return f, -1, "header cut"
		}
		size, i = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return f, -1, "header cut"
		}
		size, i = binary.BigEndian.Uint64(b[2:]), 10
	}
	if size > 1<<30 {
		return f, 0, "length " + strconv.FormatUint(size, 10) + " past 1 GiB"
	}
	if len(b) < i+4 {
		return f, -1, "header cut"
	}
	key := b[i : i+4]
	i += 4
	if uint64(len(b)-i) < size {
		return f, -1, "payload of " + strconv.FormatUint(size, 10) + " bytes, " + strconv.Itoa(len(b)-i) + " captured"
	}
	f.payload = make([]byte, size)
	for j := range f.payload {
		f.payload[j] = b[i+j] ^ key[j&3]
	}
	return f, i + int(size), ""
}

// redis parses RESP command arrays (the form every client library sends)
// and keeps PUBLISH and SPUBLISH.
func (x *extractor) redis(d []byte) {
	off := 0
	for off < len(d) {
		args, n, why := parseRESPCommand(d[off:])
		if why != "" {
			x.problem(frameProblem(n), "Redis command at offset %d: %s", off, why)
			return
		}
		off += n
		if len(args) == 0 {
			continue
		}
		name := strings.ToUpper(string(args[0]))
		if (name != "PUBLISH" && name != "SPUBLISH") || len(args) != 3 {
			x.c.Found[FoundRedisOther]++
			continue
		}
		x.c.Found[FoundRedisPublish]++
		p, ok := redisPublication(string(args[1]), args[2])
		if !ok {
			x.problem("bad topic", "%s to channel %q: not a topic name", name, clip(args[1], 64))
			continue
		}
		x.st.Pubs++
		x.event(off, Event{Pubs: []Publication{p}})
	}
}

// redisPublication turns a PUBLISH into a publication. The channel
// tf:{T} is tickfan's channel of topic T, and a message there of the shape
// tickfan publishes, "epoch\nseq\nflags\ndata" (topic/redisbroker), gives
// its data and flags ("s" snapshot, "m" msgpack). Any other channel is a
// topic of its own name; any other message is the data itself when it is
// JSON, else a JSON string of it.
func redisPublication(channel string, msg []byte) (Publication, bool) {
	name := channel
	if strings.HasPrefix(channel, "tf:{") && strings.HasSuffix(channel, "}") {
		name = channel[4 : len(channel)-1]
		if p, ok := tickfanMessage(msg); ok {
			p.Topic = name
			return p, topic.ValidName(name) == nil
		}
	}
	p := Publication{Topic: name, Data: msg}
	if !json.Valid(msg) {
		p.Data, _ = json.Marshal(string(msg))
	}
	return p, topic.ValidName(name) == nil
}

func tickfanMessage(msg []byte) (Publication, bool) {
	parts := bytes.SplitN(msg, []byte("\n"), 4)
	if len(parts) != 4 {
		return Publication{}, false
	}
	if _, err := strconv.ParseUint(string(parts[1]), 10, 64); err != nil {
		return Publication{}, false
	}
	flags := string(parts[2])
	if strings.Trim(flags, "sm") != "" {
		return Publication{}, false
	}
	p := Publication{Data: parts[3], Msgpack: strings.Contains(flags, "m"), Snap: strings.Contains(flags, "s")}
	if !p.Msgpack && !json.Valid(p.Data) {
		return Publication{}, false
	}
	return p, true
}

// parseRESPCommand parses one array of bulk strings at the start of b.
// It returns the arguments and the bytes they took, or why it cannot (n
// -1: b ends inside the command).
func parseRESPCommand(b []byte) (args [][]byte, n int, why string) {
	line := func(i int) (string, int, bool) {
		e := bytes.Index(b[i:], []byte("\r\n"))
		if e < 0 {
			return "", 0, false
		}
		return string(b[i : i+e]), i + e + 2, true
	}
	if b[0] != '*' {
		return nil, 0, "inline command " + strconv.Quote(string(clip(b, 24))) + ": not parsed"
	}
	l, i, ok := line(0)
	if !ok {
		return nil, -1, "array header cut"
	}
	count, err := strconv.Atoi(l[1:])
	if err != nil || count < 0 || count > 1<<20 {
		return nil, 0, "array header " + strconv.Quote(l)
	}
	for range count {
		if i >= len(b) {
			return nil, -1, "array cut"
		}
		if b[i] != '$' {
			return nil, 0, "argument not a bulk string"
		}
		l, j, ok := line(i)
		if !ok {
			return nil, -1, "bulk string header cut"
		}
		size, err := strconv.Atoi(l[1:])
		if err != nil || size < 0 || size > 512<<20 {
			return nil, 0, "bulk string header " + strconv.Quote(l)
		}
		if len(b)-j < size+2 {
			return nil, -1, "bulk string of " + strconv.Itoa(size) + " bytes cut"
		}
		args = append(args, b[j:j+size])
		i = j + size + 2
	}
	return args, i, ""
}

// frameProblem names why a frame parser gave up: n < 0 says the capture
// ends inside the frame, else the bytes are not a frame.
func frameProblem(n int) string {
	if n < 0 {
		return "truncated"
	}
	return "bad frame"
}
