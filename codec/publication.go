package codec

import (
	"sync"

	"github.com/tickfan/tickfan/codec/internal/mpack"
	"github.com/tickfan/tickfan/topic"
)

// Frame returns p's complete frame in format f: {"t":topic,"s":seq,"d":data},
// plus "k":"snap" for a snapshot. It encodes the frame on first use and
// caches it in p.Frames, so every subscriber of every loop shares one
// encoding per format; later calls return the same bytes without
// allocating. The frame must not be modified.
func Frame(p *topic.Publication, f Format) []byte {
	switch f {
	case WSJSON:
		return p.Frames.Get(int(WSJSON), p, encodeWSJSON)
	case WSMsgpack:
		return p.Frames.Get(int(WSMsgpack), p, encodeWSMsgpack)
	}
	return p.Frames.Get(int(TCPMsgpack), p, encodeTCPMsgpack)
}

// Plain functions, not closures, so Frames.Get does not allocate.
func encodeWSJSON(p *topic.Publication) []byte     { return encodePublication(p, WSJSON) }
func encodeWSMsgpack(p *topic.Publication) []byte  { return encodePublication(p, WSMsgpack) }
func encodeTCPMsgpack(p *topic.Publication) []byte { return encodePublication(p, TCPMsgpack) }

// scratchPool holds buffers for payload conversion, so the frame itself
// is allocated once at its exact size.
var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledScratch keeps one huge payload from pinning its buffer forever.
const maxPooledScratch = 64 << 10

// encodePublication encodes p's frame into a buffer of its exact size (up
// to the few header bytes a WebSocket frame turns out not to need).
func encodePublication(p *topic.Publication, f Format) []byte {
	data := p.Data
	var scratch *[]byte
	if p.DataMsgpack != f.Msgpack() || len(data) == 0 {
		scratch = scratchPool.Get().(*[]byte)
		data = convertPayload((*scratch)[:0], p.Data, p.DataMsgpack, f.Msgpack())
		*scratch = data
	}

	hdr := wsMaxHeader
	if f == TCPMsgpack {
		hdr = tcpHeader
	}
	var n int
	if f.Msgpack() {
		n = 1 + 2 + mpack.StrLen(len(p.Topic)) + 2 + mpack.UintLen(p.Seq) + 2 + len(data)
		if p.Snap {
			n += 2 + 5
		}
	} else {
		n = len(`{"t":"","s":,"d":}`) + len(p.Topic) + uintDigits(p.Seq) + len(data)
		if p.Snap {
			n += len(`,"k":"snap"`)
		}
	}
	buf := make([]byte, hdr, hdr+n)
	if f.Msgpack() {
		buf = appendPublicationMsgpack(buf, p, data)
	} else {
		buf = appendPublicationJSON(buf, p, data)
	}

	if scratch != nil {
		if cap(*scratch) <= maxPooledScratch {
			scratchPool.Put(scratch)
		}
	}

	body := len(buf) - hdr
	if f == TCPMsgpack {
		putUint32(buf, uint32(body))
		return buf
	}
	h := wsHeaderLen(body)
	putWSHeader(buf[hdr-h:hdr], f.wsOp(), body)
	return buf[hdr-h:]
}

func appendPublicationJSON(dst []byte, p *topic.Publication, data []byte) []byte {
	dst = append(dst, `{"t":`...)
	dst = appendJSONString(dst, p.Topic)
	dst = append(dst, `,"s":`...)
	dst = appendUintText(dst, p.Seq)
	dst = append(dst, `,"d":`...)
	dst = append(dst, data...)
	if p.Snap {
		dst = append(dst, `,"k":"snap"`...)
	}
	return append(dst, '}')
}

func appendPublicationMsgpack(dst []byte, p *topic.Publication, data []byte) []byte {
	if p.Snap {
		dst = append(dst, 0x84)
	} else {
		dst = append(dst, 0x83)
	}
	dst = append(dst, 0xa1, 't')
	dst = mpack.AppendStr(dst, p.Topic)
	dst = append(dst, 0xa1, 's')
	dst = mpack.AppendUint(dst, p.Seq)
	dst = append(dst, 0xa1, 'd')
	dst = append(dst, data...)
	if p.Snap {
		dst = append(dst, 0xa1, 'k', 0xa4, 's', 'n', 'a', 'p')
	}
	return dst
}

func uintDigits(v uint64) int {
	n := 1
	for v >= 10 {
		v /= 10
		n++
	}
	return n
}

func putUint32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}
