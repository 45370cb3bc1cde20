package codec

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math"
	"strconv"
)

// msgpack type bytes used by name.
const (
	mpNil   = 0xc0
	mpFalse = 0xc2
	mpTrue  = 0xc3
)

func appendMsgpackMapHeader(dst []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(dst, 0x80|byte(n))
	case n <= math.MaxUint16:
		return append(dst, 0xde, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, 0xdf), uint32(n))
}

func appendMsgpackArrayHeader(dst []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(dst, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(dst, 0xdc, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, 0xdd), uint32(n))
}

// patchMsgpackHeader writes the header of a map (isMap) or array of n
// entries at dst[pos], where one byte was reserved for it, moving what
// follows when the header needs more room.
func patchMsgpackHeader(dst []byte, pos, n int, isMap bool) []byte {
	if n <= 15 {
		if isMap {
			dst[pos] = 0x80 | byte(n)
		} else {
			dst[pos] = 0x90 | byte(n)
		}
		return dst
	}
	var hdr [5]byte
	var h []byte
	if isMap {
		h = appendMsgpackMapHeader(hdr[:0], n)
	} else {
		h = appendMsgpackArrayHeader(hdr[:0], n)
	}
	extra := len(h) - 1
	end := len(dst)
	dst = append(dst, hdr[:extra]...)
	copy(dst[pos+len(h):], dst[pos+1:end])
	copy(dst[pos:], h)
	return dst
}

func appendMsgpackStrHeader(dst []byte, n int) []byte {
	switch {
	case n <= 31:
		return append(dst, 0xa0|byte(n))
	case n <= math.MaxUint8:
		return append(dst, 0xd9, byte(n))
	case n <= math.MaxUint16:
		return append(dst, 0xda, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, 0xdb), uint32(n))
}

func appendMsgpackStr(dst []byte, s string) []byte {
	return append(appendMsgpackStrHeader(dst, len(s)), s...)
}

func appendMsgpackStrBytes(dst, s []byte) []byte {
	return append(appendMsgpackStrHeader(dst, len(s)), s...)
}

// msgpackStrLen is the encoded size of a str of n bytes.
func msgpackStrLen(n int) int {
	switch {
	case n <= 31:
		return 1 + n
	case n <= math.MaxUint8:
		return 2 + n
	case n <= math.MaxUint16:
		return 3 + n
	}
	return 5 + n
}

func appendMsgpackUint(dst []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(dst, byte(v))
	case v <= math.MaxUint8:
		return append(dst, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return append(dst, 0xcd, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xcf), v)
}

// msgpackUintLen is the encoded size of v.
func msgpackUintLen(v uint64) int {
	switch {
	case v <= 0x7f:
		return 1
	case v <= math.MaxUint8:
		return 2
	case v <= math.MaxUint16:
		return 3
	case v <= math.MaxUint32:
		return 5
	}
	return 9
}

func appendMsgpackInt(dst []byte, v int64) []byte {
	if v >= 0 {
		return appendMsgpackUint(dst, uint64(v))
	}
	switch {
	case v >= -32:
		return append(dst, byte(v))
	case v >= math.MinInt8:
		return append(dst, 0xd0, byte(v))
	case v >= math.MinInt16:
		return append(dst, 0xd1, byte(v>>8), byte(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(dst, 0xd2), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(v))
}

func appendMsgpackBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, mpTrue)
	}
	return append(dst, mpFalse)
}

func appendMsgpackFloat64(dst []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, 0xcb), math.Float64bits(f))
}

// mpLayout says, for a type byte in 0xc0..0xdf, how its value is laid out:
// fixed is the bytes after the type byte when there is no length field,
// lenBytes the width of the length field that follows the type byte (0 when
// none), and kind what the length counts.
type mpLayout struct {
	fixed    uint8
	lenBytes uint8
	kind     uint8
}

const (
	mpKindScalar = iota
	mpKindBytes  // str or bin: length bytes follow
	mpKindExt    // ext: a type byte and length bytes follow
	mpKindArray
	mpKindMap
	mpKindInvalid
)

var mpLayouts = [32]mpLayout{
	0x00: {},                               // nil
	0x01: {kind: mpKindInvalid},            // never used
	0x02: {},                               // false
	0x03: {},                               // true
	0x04: {lenBytes: 1, kind: mpKindBytes}, // bin 8
	0x05: {lenBytes: 2, kind: mpKindBytes},
	0x06: {lenBytes: 4, kind: mpKindBytes},
	0x07: {lenBytes: 1, kind: mpKindExt}, // ext 8
	0x08: {lenBytes: 2, kind: mpKindExt},
	0x09: {lenBytes: 4, kind: mpKindExt},
	0x0a: {fixed: 4}, // float 32
	0x0b: {fixed: 8},
	0x0c: {fixed: 1}, // uint 8
	0x0d: {fixed: 2},
	0x0e: {fixed: 4},
	0x0f: {fixed: 8},
	0x10: {fixed: 1}, // int 8
	0x11: {fixed: 2},
	0x12: {fixed: 4},
	0x13: {fixed: 8},
	0x14: {fixed: 2, kind: mpKindExt}, // fixext 1: type byte + 1
	0x15: {fixed: 3, kind: mpKindExt},
	0x16: {fixed: 5, kind: mpKindExt},
	0x17: {fixed: 9, kind: mpKindExt},
	0x18: {fixed: 17, kind: mpKindExt},
	0x19: {lenBytes: 1, kind: mpKindBytes}, // str 8
	0x1a: {lenBytes: 2, kind: mpKindBytes},
	0x1b: {lenBytes: 4, kind: mpKindBytes},
	0x1c: {lenBytes: 2, kind: mpKindArray}, // array 16
	0x1d: {lenBytes: 4, kind: mpKindArray},
	0x1e: {lenBytes: 2, kind: mpKindMap}, // map 16
	0x1f: {lenBytes: 4, kind: mpKindMap},
}

func readBE(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// mpSkip returns the index just past the msgpack value that starts at b[i],
// or -1 when there is no whole, well-formed value there or it nests deeper
// than maxDepth. jsonOnly also refuses ext values, which have no JSON form.
func mpSkip(b []byte, i int, jsonOnly bool) int {
	// The stack holds the pending count of each enclosing container, with
	// mapBit set for a map: JSON keys must be scalars, or converting a map
	// whose keys are maps would grow without bound (each level's key is
	// quoted, escaping the level below again).
	const mapBit = uint64(1) << 63
	var stackBuf [16]uint64
	stack := stackBuf[:0]
	pending := uint64(1) // values still to read in the innermost container
	inMap := false
	for {
		for pending == 0 {
			if len(stack) == 0 {
				return i
			}
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			pending, inMap = top&^mapBit, top&mapBit != 0
		}
		isKey := inMap && pending%2 == 0
		pending--
		if i >= len(b) {
			return -1
		}
		c := b[i]
		i++
		var skip, items uint64
		isMap := false
		switch {
		case c <= 0x7f || c >= 0xe0: // fixint
		case c <= 0x8f:
			items, isMap = 2*uint64(c&0x0f), true
		case c <= 0x9f:
			items = uint64(c & 0x0f)
		case c <= 0xbf:
			skip = uint64(c & 0x1f)
		default:
			l := mpLayouts[c-0xc0]
			if l.kind == mpKindInvalid || jsonOnly && l.kind == mpKindExt {
				return -1
			}
			skip = uint64(l.fixed)
			if l.lenBytes > 0 {
				if int(l.lenBytes) > len(b)-i {
					return -1
				}
				n := readBE(b[i : i+int(l.lenBytes)])
				i += int(l.lenBytes)
				switch l.kind {
				case mpKindBytes:
					skip = n
				case mpKindExt:
					skip = 1 + n
				case mpKindArray:
					items = n
				case mpKindMap:
					items, isMap = 2*n, true
				}
			}
		}
		if jsonOnly && isKey && (isMap || c >= 0x90 && c <= 0x9f || c == 0xdc || c == 0xdd) {
			return -1 // a map or array as a map key
		}
		if skip > uint64(len(b)-i) {
			return -1
		}
		i += int(skip)
		if items > 0 {
			// Each item takes at least one byte: refuse a count the rest
			// of b cannot hold before walking it.
			if items > uint64(len(b)-i) || len(stack) >= maxDepth {
				return -1
			}
			top := pending
			if inMap {
				top |= mapBit
			}
			stack = append(stack, top)
			pending, inMap = items, isMap
		}
	}
}

// ValidMsgpack reports whether b is exactly one msgpack value, with nothing
// after it, that JSON can carry (no ext types, no map or array as a map
// key, nesting within the JSON limit).
func ValidMsgpack(b []byte) bool {
	return len(b) > 0 && mpSkip(b, 0, true) == len(b)
}

// mpContainerLen reads the header of a map (isMap) or array at b[i]: the
// entry count and the index of the first entry.
func mpContainerLen(b []byte, i int, isMap bool) (n, next int, ok bool) {
	if i >= len(b) {
		return 0, i, false
	}
	c := b[i]
	fix, w16, w32 := byte(0x90), byte(0xdc), byte(0xdd)
	if isMap {
		fix, w16, w32 = 0x80, 0xde, 0xdf
	}
	switch {
	case c&0xf0 == fix:
		return int(c & 0x0f), i + 1, true
	case c == w16 && len(b)-i >= 3:
		return int(readBE(b[i+1 : i+3])), i + 3, true
	case c == w32 && len(b)-i >= 5:
		return int(readBE(b[i+1 : i+5])), i + 5, true
	}
	return 0, i, false
}

// mpStr returns the bytes of the msgpack str at the front of v.
func mpStr(v []byte) (s []byte, ok bool) {
	if len(v) == 0 {
		return nil, false
	}
	c := v[0]
	var n, h int
	switch {
	case c&0xe0 == 0xa0:
		n, h = int(c&0x1f), 1
	case c == 0xd9 && len(v) >= 2:
		n, h = int(v[1]), 2
	case c == 0xda && len(v) >= 3:
		n, h = int(readBE(v[1:3])), 3
	case c == 0xdb && len(v) >= 5:
		n, h = int(readBE(v[1:5])), 5
	default:
		return nil, false
	}
	if n > len(v)-h {
		return nil, false
	}
	return v[h : h+n], true
}

// mpUint returns the value of the non-negative msgpack integer v.
func mpUint(v []byte) (u uint64, ok bool) {
	if len(v) == 0 {
		return 0, false
	}
	c := v[0]
	if c <= 0x7f {
		return uint64(c), true
	}
	var size int
	signed := false
	switch c {
	case 0xcc, 0xcd, 0xce, 0xcf:
		size = 1 << (c - 0xcc)
	case 0xd0, 0xd1, 0xd2, 0xd3:
		size = 1 << (c - 0xd0)
		signed = true
	default:
		return 0, false
	}
	if len(v) < 1+size {
		return 0, false
	}
	u = readBE(v[1 : 1+size])
	if signed && u>>(8*size-1) != 0 {
		return 0, false // negative
	}
	return u, true
}

var errBadMsgpack = errors.New("not one msgpack value that JSON can carry")

// MsgpackToJSON appends the JSON form of the msgpack value mp to dst: bin
// becomes a base64 string as encoding/json writes []byte, map keys that are
// not strings (numbers, bools, nil, bin) become their JSON text as a
// string, NaN and infinities become null. ext values, and maps or arrays
// used as map keys, have no JSON form and are refused.
func MsgpackToJSON(dst, mp []byte) ([]byte, error) {
	if !ValidMsgpack(mp) {
		return dst, errBadMsgpack
	}
	out, _ := mpToJSON(dst, mp, 0)
	return out, nil
}

// mpToJSON converts the valid, JSON-compatible msgpack value at b[i] and
// returns the index after it.
func mpToJSON(dst, b []byte, i int) ([]byte, int) {
	c := b[i]
	switch {
	case c <= 0x7f:
		return appendUintText(dst, uint64(c)), i + 1
	case c >= 0xe0:
		return appendIntText(dst, int64(int8(c))), i + 1
	case c <= 0x8f:
		return mpMapToJSON(dst, b, i+1, int(c&0x0f))
	case c <= 0x9f:
		return mpArrayToJSON(dst, b, i+1, int(c&0x0f))
	case c <= 0xbf:
		n := int(c & 0x1f)
		return appendJSONString(dst, bytesToString(b[i+1:i+1+n])), i + 1 + n
	}
	switch c {
	case mpNil:
		return append(dst, "null"...), i + 1
	case mpFalse:
		return append(dst, "false"...), i + 1
	case mpTrue:
		return append(dst, "true"...), i + 1
	case 0xc4, 0xc5, 0xc6: // bin
		w := 1 << (c - 0xc4)
		n := int(readBE(b[i+1 : i+1+w]))
		start := i + 1 + w
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, b[start:start+n])
		return append(dst, '"'), start + n
	case 0xca:
		return appendJSONFloat(dst, float64(math.Float32frombits(uint32(readBE(b[i+1:i+5])))), 32), i + 5
	case 0xcb:
		return appendJSONFloat(dst, math.Float64frombits(readBE(b[i+1:i+9])), 64), i + 9
	case 0xcc, 0xcd, 0xce, 0xcf:
		w := 1 << (c - 0xcc)
		return appendUintText(dst, readBE(b[i+1:i+1+w])), i + 1 + w
	case 0xd0:
		return appendIntText(dst, int64(int8(b[i+1]))), i + 2
	case 0xd1:
		return appendIntText(dst, int64(int16(readBE(b[i+1:i+3])))), i + 3
	case 0xd2:
		return appendIntText(dst, int64(int32(readBE(b[i+1:i+5])))), i + 5
	case 0xd3:
		return appendIntText(dst, int64(readBE(b[i+1:i+9]))), i + 9
	case 0xd9, 0xda, 0xdb: // str
		w := 1 << (c - 0xd9)
		n := int(readBE(b[i+1 : i+1+w]))
		start := i + 1 + w
		return appendJSONString(dst, bytesToString(b[start:start+n])), start + n
	case 0xdc:
		return mpArrayToJSON(dst, b, i+3, int(readBE(b[i+1:i+3])))
	case 0xdd:
		return mpArrayToJSON(dst, b, i+5, int(readBE(b[i+1:i+5])))
	case 0xde:
		return mpMapToJSON(dst, b, i+3, int(readBE(b[i+1:i+3])))
	case 0xdf:
		return mpMapToJSON(dst, b, i+5, int(readBE(b[i+1:i+5])))
	}
	// Unreachable for a value ValidMsgpack accepted.
	return append(dst, "null"...), i + 1
}

func mpArrayToJSON(dst, b []byte, i, n int) ([]byte, int) {
	dst = append(dst, '[')
	for k := 0; k < n; k++ {
		if k > 0 {
			dst = append(dst, ',')
		}
		dst, i = mpToJSON(dst, b, i)
	}
	return append(dst, ']'), i
}

func mpMapToJSON(dst, b []byte, i, n int) ([]byte, int) {
	dst = append(dst, '{')
	for k := 0; k < n; k++ {
		if k > 0 {
			dst = append(dst, ',')
		}
		if s, ok := mpStr(b[i:]); ok {
			dst = appendJSONString(dst, bytesToString(s))
			i = mpSkip(b, i, true)
		} else {
			// A key JSON cannot carry as is: use its JSON text, quoted.
			// A bin key already converts to a quoted base64 string.
			var text []byte
			text, i = mpToJSON(nil, b, i)
			if text[0] == '"' {
				dst = append(dst, text...)
			} else {
				dst = appendJSONString(dst, bytesToString(text))
			}
		}
		dst = append(dst, ':')
		dst, i = mpToJSON(dst, b, i)
	}
	return append(dst, '}'), i
}

func appendUintText(dst []byte, v uint64) []byte { return strconv.AppendUint(dst, v, 10) }

func appendIntText(dst []byte, v int64) []byte { return strconv.AppendInt(dst, v, 10) }
