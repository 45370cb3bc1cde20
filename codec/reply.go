package codec

import (
	"github.com/tickfan/tickfan/codec/internal/mpack"
	"github.com/tickfan/tickfan/topic"
)

// encoder appends one map in JSON or msgpack. In JSON it puts the commas
// itself: a key or an array element follows a comma unless it opens its
// container. In msgpack the caller gives each map's entry count up front.
type encoder struct {
	b  []byte
	mp bool
}

func (e *encoder) openMap(n int)   { e.open(n, '{') }
func (e *encoder) closeMap()       { e.close('}') }
func (e *encoder) openArray(n int) { e.open(n, '[') }
func (e *encoder) closeArray()     { e.close(']') }

// open starts a map ('{') or array ('[') of n entries: in JSON its opening
// bracket, in msgpack a header that counts them.
func (e *encoder) open(n int, bracket byte) {
	switch {
	case !e.mp:
		e.b = append(e.b, bracket)
	case bracket == '{':
		e.b = mpack.AppendMapHeader(e.b, n)
	default:
		e.b = mpack.AppendArrayHeader(e.b, n)
	}
}

// close ends a map ('}') or array (']'); msgpack needs no end.
func (e *encoder) close(bracket byte) {
	if !e.mp {
		e.b = append(e.b, bracket)
	}
}

// elem starts an array element.
func (e *encoder) elem() {
	if !e.mp && e.b[len(e.b)-1] != '[' {
		e.b = append(e.b, ',')
	}
}

func (e *encoder) key(k string) {
	if e.mp {
		e.b = mpack.AppendStr(e.b, k)
		return
	}
	if e.b[len(e.b)-1] != '{' {
		e.b = append(e.b, ',')
	}
	e.b = appendJSONString(e.b, k)
	e.b = append(e.b, ':')
}

func (e *encoder) str(s string) {
	if e.mp {
		e.b = mpack.AppendStr(e.b, s)
	} else {
		e.b = appendJSONString(e.b, s)
	}
}

func (e *encoder) uint(v uint64) {
	if e.mp {
		e.b = mpack.AppendUint(e.b, v)
	} else {
		e.b = appendUintText(e.b, v)
	}
}

func (e *encoder) int(v int64) {
	if e.mp {
		e.b = mpack.AppendInt(e.b, v)
	} else {
		e.b = appendIntText(e.b, v)
	}
}

func (e *encoder) bool(v bool) {
	switch {
	case e.mp:
		e.b = mpack.AppendBool(e.b, v)
	case v:
		e.b = append(e.b, "true"...)
	default:
		e.b = append(e.b, "false"...)
	}
}

// raw appends a value already encoded in the encoder's format.
func (e *encoder) raw(v []byte) { e.b = append(e.b, v...) }

// startFrame begins a frame of format f at the end of dst whose body is one
// map; endFrame finishes it.
func startFrame(dst []byte, f Format) (encoder, int) {
	dst, start := beginFrame(dst, f)
	return encoder{b: dst, mp: f.Msgpack()}, start
}

func (e *encoder) endFrame(f Format, start int) []byte { return endFrame(e.b, f, start) }

// startReply begins {"id":N,"<field>": ...}: the caller writes the value of
// field and calls endReply.
func startReply(dst []byte, f Format, id uint64, hasID bool, field string) (encoder, int) {
	e, start := startFrame(dst, f)
	if hasID {
		e.openMap(2)
		e.key("id")
		e.uint(id)
	} else {
		e.openMap(1)
	}
	e.key(field)
	return e, start
}

func (e *encoder) endReply(f Format, start int) []byte {
	e.closeMap()
	return e.endFrame(f, start)
}

// AppendError appends the frame {"id":N,"err":{"code":C,"msg":"..."}}; the
// id only when hasID.
func AppendError(dst []byte, f Format, id uint64, hasID bool, code int, msg string) []byte {
	e, start := startReply(dst, f, id, hasID, "err")
	e.openMap(2)
	e.key("code")
	e.int(int64(code))
	e.key("msg")
	e.str(msg)
	e.closeMap()
	return e.endReply(f, start)
}

// AppendEmptyReply appends the frame {"id":N,"res":{}}.
func AppendEmptyReply(dst []byte, f Format, id uint64, hasID bool) []byte {
	e, start := startReply(dst, f, id, hasID, "res")
	e.openMap(0)
	e.closeMap()
	return e.endReply(f, start)
}

// SubResult is one topic of a sub reply.
type SubResult struct {
	Topic string
	Epoch string
	Seq   uint64
	Rec   bool
}

// AppendSubReply appends the frame
// {"id":N,"res":{"<topic>":{"e":..,"s":..,"rec":bool},...}}.
func AppendSubReply(dst []byte, f Format, id uint64, hasID bool, res []SubResult) []byte {
	e, start := startReply(dst, f, id, hasID, "res")
	e.openMap(len(res))
	for _, r := range res {
		e.key(r.Topic)
		e.openMap(3)
		e.key("e")
		e.str(r.Epoch)
		e.key("s")
		e.uint(r.Seq)
		e.key("rec")
		e.bool(r.Rec)
		e.closeMap()
	}
	e.closeMap()
	return e.endReply(f, start)
}

// AppendPubReply appends the frame {"id":N,"res":{"e":..,"s":..}}.
func AppendPubReply(dst []byte, f Format, id uint64, hasID bool, pos topic.Position) []byte {
	e, start := startReply(dst, f, id, hasID, "res")
	e.openMap(2)
	e.key("e")
	e.str(pos.Epoch)
	e.key("s")
	e.uint(pos.Seq)
	e.closeMap()
	return e.endReply(f, start)
}

// AppendPullReply appends the frame
// {"id":N,"res":{"e":..,"pubs":[publication maps],"more":bool}}. Each
// publication map is the body of its cached frame, so it is encoded once
// however many clients pull or receive it.
func AppendPullReply(dst []byte, f Format, id uint64, hasID bool, epoch string, pubs []*topic.Publication, more bool) []byte {
	e, start := startReply(dst, f, id, hasID, "res")
	e.openMap(3)
	e.key("e")
	e.str(epoch)
	e.key("pubs")
	e.openArray(len(pubs))
	for _, p := range pubs {
		e.elem()
		e.raw(Body(Frame(p, f), f))
	}
	e.closeArray()
	e.key("more")
	e.bool(more)
	e.closeMap()
	return e.endReply(f, start)
}

// AppendAuthReply appends the frame {"id":N,"res":{"sub":..,"exp":..}}, the
// reply to auth and refresh; exp is in unix seconds.
func AppendAuthReply(dst []byte, f Format, id uint64, hasID bool, sub string, exp int64) []byte {
	e, start := startReply(dst, f, id, hasID, "res")
	e.openMap(2)
	e.key("sub")
	e.str(sub)
	e.key("exp")
	e.int(exp)
	e.closeMap()
	return e.endReply(f, start)
}

// AppendReset appends the frame {"op":"reset","t":..,"e":..,"s":..}.
func AppendReset(dst []byte, f Format, topicName, epoch string, seq uint64) []byte {
	e, start := startFrame(dst, f)
	e.openMap(4)
	e.key("op")
	e.str("reset")
	e.key("t")
	e.str(topicName)
	e.key("e")
	e.str(epoch)
	e.key("s")
	e.uint(seq)
	e.closeMap()
	return e.endFrame(f, start)
}

// AppendLag appends the frame {"op":"lag","t":..,"s":..}.
func AppendLag(dst []byte, f Format, topicName string, seq uint64) []byte {
	e, start := startFrame(dst, f)
	e.openMap(3)
	e.key("op")
	e.str("lag")
	e.key("t")
	e.str(topicName)
	e.key("s")
	e.uint(seq)
	e.closeMap()
	return e.endFrame(f, start)
}

// AppendPingMessage appends the TCP heartbeat {"op":"ping"} framed for
// TCPMsgpack (WebSocket connections get a WebSocket ping instead).
func AppendPingMessage(dst []byte) []byte {
	e, start := startFrame(dst, TCPMsgpack)
	e.openMap(1)
	e.key("op")
	e.str("ping")
	e.closeMap()
	return e.endFrame(TCPMsgpack, start)
}
