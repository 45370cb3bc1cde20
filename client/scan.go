package client

import "bytes"

// Publication is what ScanPublication reads of a publication; the byte
// slices alias the body scanned.
type Publication struct {
	Topic []byte
	Seq   uint64
	Data  []byte // d, in the connection's encoding
	Snap  bool
}

// ScanPublication reads a publication body, msgpack when mp and JSON
// otherwise, without decoding it and without allocating: the server writes
// {"t":..,"s":..,"d":..} in that order, then "k":"snap" on a snapshot (the
// encode-once frames of codec.Frame). ok is false for any other message,
// which Decode then reads.
func ScanPublication(body []byte, mp bool) (p Publication, ok bool) {
	if mp {
		return scanPublicationMsgpack(body)
	}
	return scanPublicationJSON(body)
}

var (
	jsonPubPrefix = []byte(`{"t":"`)
	jsonSeqKey    = []byte(`","s":`)
	jsonDataKey   = []byte(`,"d":`)
	jsonSnapEnd   = []byte(`,"k":"snap"}`)
	mpSnapEnd     = []byte{0xa1, 'k', 0xa4, 's', 'n', 'a', 'p'}
)

func scanPublicationJSON(b []byte) (p Publication, ok bool) {
	if !bytes.HasPrefix(b, jsonPubPrefix) {
		return p, false
	}
	i := len(jsonPubPrefix)
	end := bytes.IndexByte(b[i:], '"') // topic names have no escapes
	if end < 0 {
		return p, false
	}
	p.Topic = b[i : i+end]
	i += end
	if !bytes.HasPrefix(b[i:], jsonSeqKey) {
		return p, false
	}
	i += len(jsonSeqKey)
	p.Seq, i, ok = JSONUint(b, i)
	if !ok || !bytes.HasPrefix(b[i:], jsonDataKey) {
		return p, false
	}
	i += len(jsonDataKey)
	// A payload is one JSON value, so it cannot end in ,"k":"snap" with
	// the object's brace after it: the suffix is the snapshot's mark.
	end = len(b) - 1
	if bytes.HasSuffix(b, jsonSnapEnd) {
		end, p.Snap = len(b)-len(jsonSnapEnd), true
	}
	if end <= i || b[len(b)-1] != '}' {
		return p, false
	}
	p.Data = b[i:end]
	return p, true
}

// JSONUint reads the digits of a JSON unsigned integer at b[i] and returns
// it and the index after it.
func JSONUint(b []byte, i int) (v uint64, next int, ok bool) {
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		v = v*10 + uint64(b[i]-'0')
		i++
	}
	return v, i, i > start
}

func scanPublicationMsgpack(b []byte) (p Publication, ok bool) {
	if len(b) < 8 || (b[0] != 0x83 && b[0] != 0x84) || b[1] != 0xa1 || b[2] != 't' {
		return p, false
	}
	i := 3
	var n int
	switch c := b[i]; {
	case c >= 0xa0 && c <= 0xbf:
		n, i = int(c&0x1f), i+1
	case c == 0xd9 && i+1 < len(b):
		n, i = int(b[i+1]), i+2
	default:
		return p, false
	}
	if i+n+2 > len(b) {
		return p, false
	}
	p.Topic = b[i : i+n]
	i += n
	if b[i] != 0xa1 || b[i+1] != 's' {
		return p, false
	}
	p.Seq, i, ok = MsgpackUint(b, i+2)
	if !ok || i+3 > len(b) || b[i] != 0xa1 || b[i+1] != 'd' {
		return p, false
	}
	i += 2
	end := len(b)
	if b[0] == 0x84 { // the fourth key, k, comes last
		if !bytes.HasSuffix(b, mpSnapEnd) {
			return p, false
		}
		end, p.Snap = len(b)-len(mpSnapEnd), true
	}
	if end <= i {
		return p, false
	}
	p.Data = b[i:end]
	return p, true
}

// MsgpackUint reads a msgpack unsigned integer at b[i] and returns it and
// the index after it.
func MsgpackUint(b []byte, i int) (v uint64, next int, ok bool) {
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
