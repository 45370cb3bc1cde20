package mpack

// MaxDepth bounds the nesting of arrays and maps that Skip accepts. It is
// the limit encoding/json applies, so that a value that passes here also
// converts to JSON and back, and converters that recurse stay on a small
// stack.
const MaxDepth = 10000

// layout says, for a type byte in 0xc0..0xdf, how its value is laid out:
// fixed is the bytes after the type byte when there is no length field,
// lenBytes the width of the length field that follows the type byte (0 when
// none), and kind what the length counts.
type layout struct {
	fixed    uint8
	lenBytes uint8
	kind     uint8
}

const (
	kindScalar = iota
	kindBytes  // str or bin: length bytes follow
	kindExt    // ext: a type byte and length bytes follow
	kindArray
	kindMap
	kindInvalid
)

var layouts = [32]layout{
	0x00: {},                             // nil
	0x01: {kind: kindInvalid},            // never used
	0x02: {},                             // false
	0x03: {},                             // true
	0x04: {lenBytes: 1, kind: kindBytes}, // bin 8
	0x05: {lenBytes: 2, kind: kindBytes},
	0x06: {lenBytes: 4, kind: kindBytes},
	0x07: {lenBytes: 1, kind: kindExt}, // ext 8
	0x08: {lenBytes: 2, kind: kindExt},
	0x09: {lenBytes: 4, kind: kindExt},
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
	0x14: {fixed: 2, kind: kindExt}, // fixext 1: type byte + 1
	0x15: {fixed: 3, kind: kindExt},
	0x16: {fixed: 5, kind: kindExt},
	0x17: {fixed: 9, kind: kindExt},
	0x18: {fixed: 17, kind: kindExt},
	0x19: {lenBytes: 1, kind: kindBytes}, // str 8
	0x1a: {lenBytes: 2, kind: kindBytes},
	0x1b: {lenBytes: 4, kind: kindBytes},
	0x1c: {lenBytes: 2, kind: kindArray}, // array 16
	0x1d: {lenBytes: 4, kind: kindArray},
	0x1e: {lenBytes: 2, kind: kindMap}, // map 16
	0x1f: {lenBytes: 4, kind: kindMap},
}

// BigEndian reads b, at most 8 bytes, as a big-endian unsigned integer.
func BigEndian(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// Skip returns the index just past the msgpack value that starts at b[i],
// or -1 when there is no whole, well-formed value there or it nests deeper
// than MaxDepth.
func Skip(b []byte, i int) int { return skip(b, i, false) }

// SkipJSONable is Skip that also refuses what has no JSON form: ext values,
// and maps or arrays used as map keys.
func SkipJSONable(b []byte, i int) int { return skip(b, i, true) }

// End returns the index just past the value at b[i], in bytes that Skip
// already accepted whole: Skip without the checks, and without walking
// for the fixints and short strs that most values are.
func End(b []byte, i int) int {
	if c := b[i]; c <= 0x7f || c >= 0xe0 {
		return i + 1
	} else if c&0xe0 == 0xa0 {
		return i + 1 + int(c&0x1f)
	}
	return skip(b, i, false)
}

// Key reads the map key at b[i], in bytes that Skip already accepted
// whole: its bytes when it is a str (isStr), and the index just past it.
func Key(b []byte, i int) (s []byte, isStr bool, end int) {
	if c := b[i]; c&0xe0 == 0xa0 { // a fixstr: nearly every key
		end = i + 1 + int(c&0x1f)
		return b[i+1 : end], true, end
	}
	end = skip(b, i, false)
	s, isStr = Str(b[i:end])
	return s, isStr, end
}

func skip(b []byte, i int, jsonOnly bool) int {
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
			l := layouts[c-0xc0]
			if l.kind == kindInvalid || jsonOnly && l.kind == kindExt {
				return -1
			}
			skip = uint64(l.fixed)
			if l.lenBytes > 0 {
				if int(l.lenBytes) > len(b)-i {
					return -1
				}
				n := BigEndian(b[i : i+int(l.lenBytes)])
				i += int(l.lenBytes)
				switch l.kind {
				case kindBytes:
					skip = n
				case kindExt:
					skip = 1 + n
				case kindArray:
					items = n
				case kindMap:
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
			if items > uint64(len(b)-i) || len(stack) >= MaxDepth {
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

// MapHeader reads the header of a map at b[i]: its entry count and the
// index of its first key; ok is false when no map starts there.
func MapHeader(b []byte, i int) (n, next int, ok bool) {
	return containerHeader(b, i, 0x80, 0xde, 0xdf)
}

// ArrayHeader reads the header of an array at b[i]: its element count and
// the index of its first element; ok is false when no array starts there.
func ArrayHeader(b []byte, i int) (n, next int, ok bool) {
	return containerHeader(b, i, 0x90, 0xdc, 0xdd)
}

func containerHeader(b []byte, i int, fix, w16, w32 byte) (n, next int, ok bool) {
	if i >= len(b) {
		return 0, i, false
	}
	switch c := b[i]; {
	case c&0xf0 == fix:
		return int(c & 0x0f), i + 1, true
	case c == w16 && len(b)-i >= 3:
		return int(BigEndian(b[i+1 : i+3])), i + 3, true
	case c == w32 && len(b)-i >= 5:
		return int(BigEndian(b[i+1 : i+5])), i + 5, true
	}
	return 0, i, false
}

// Str returns the bytes of the str at the front of v.
func Str(v []byte) (s []byte, ok bool) {
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
		n, h = int(BigEndian(v[1:3])), 3
	case c == 0xdb && len(v) >= 5:
		n, h = int(BigEndian(v[1:5])), 5
	default:
		return nil, false
	}
	if n > len(v)-h {
		return nil, false
	}
	return v[h : h+n], true
}

// Uint returns the value of the integer at the front of v when it is not
// negative, whichever integer type carries it.
func Uint(v []byte) (u uint64, ok bool) {
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
	u = BigEndian(v[1 : 1+size])
	if signed && u>>(8*size-1) != 0 {
		return 0, false // negative
	}
	return u, true
}
