package codec

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// maxDepth bounds the nesting of arrays and maps in a payload. It is the
// limit encoding/json applies, so JSON and msgpack payloads get the same one
// and the recursive converters stay on a small stack.
const maxDepth = 10000

// ValidJSON reports whether b is exactly one JSON value (surrounding white
// space allowed) that every client format can carry: it must be UTF-8, as
// WebSocket text frames are, and its numbers must fit a float64, since a
// msgpack client gets them as one.
func ValidJSON(b []byte) bool {
	return json.Valid(b) && utf8.Valid(b) && jsonNumbersFinite(b)
}

// jsonNumbersFinite reports whether every number of the valid JSON text b
// parses to a finite float64.
func jsonNumbersFinite(b []byte) bool {
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '"':
			i, _ = jsonStringEnd(b, i)
		case c == '-' || c >= '0' && c <= '9':
			end := jsonNumberEnd(b, i)
			num := b[i:end]
			// Only an exponent or a very long mantissa can overflow.
			if len(num) > 300 || hasExponent(num) {
				if f, err := strconv.ParseFloat(bytesToString(num), 64); err != nil && math.IsInf(f, 0) {
					return false
				}
			}
			i = end
		default:
			i++
		}
	}
	return true
}

func hasExponent(num []byte) bool {
	for _, c := range num {
		if c == 'e' || c == 'E' {
			return true
		}
	}
	return false
}

// The scanning helpers below work on text that json.Valid accepted, so they
// check only what they need to find the end of a token.

func jsonSkipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// jsonStringEnd returns the index just past the string that opens at b[i],
// and whether it holds a backslash escape.
func jsonStringEnd(b []byte, i int) (end int, escaped bool) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i + 1, escaped
		}
	}
	return len(b), escaped
}

func jsonNumberEnd(b []byte, i int) int {
	for ; i < len(b); i++ {
		switch c := b[i]; {
		case c >= '0' && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
		default:
			return i
		}
	}
	return i
}

// jsonSkipValue returns the index just past the value that starts at b[i].
func jsonSkipValue(b []byte, i int) int {
	switch c := b[i]; {
	case c == '"':
		end, _ := jsonStringEnd(b, i)
		return end
	case c == '{' || c == '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i, _ = jsonStringEnd(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	case c == 't' || c == 'n':
		return i + 4
	case c == 'f':
		return i + 5
	}
	return jsonNumberEnd(b, i)
}

// jsonObject walks the members of a valid JSON object.
type jsonObject struct {
	b []byte
	i int
}

// newJSONObject starts a walk of the object at b[i]; ok is false when the
// value there is not an object.
func newJSONObject(b []byte, i int) (o jsonObject, ok bool) {
	if i >= len(b) || b[i] != '{' {
		return o, false
	}
	return jsonObject{b: b, i: i + 1}, true
}

// next returns the next member: its key with quotes and escapes as sent,
// and its value.
func (o *jsonObject) next() (key, val []byte, ok bool) {
	i := jsonSkipWS(o.b, o.i)
	if i < len(o.b) && o.b[i] == ',' {
		i = jsonSkipWS(o.b, i+1)
	}
	if i >= len(o.b) || o.b[i] != '"' {
		o.i = len(o.b)
		return nil, nil, false
	}
	kend, _ := jsonStringEnd(o.b, i)
	key = o.b[i:kend]
	i = jsonSkipWS(o.b, kend) + 1 // the colon
	i = jsonSkipWS(o.b, i)
	vend := jsonSkipValue(o.b, i)
	o.i = vend
	return key, o.b[i:vend], true
}

// jsonArray walks the elements of a valid JSON array.
type jsonArray struct {
	b []byte
	i int
}

func newJSONArray(b []byte) (a jsonArray, ok bool) {
	if len(b) == 0 || b[0] != '[' {
		return a, false
	}
	return jsonArray{b: b, i: 1}, true
}

func (a *jsonArray) next() (val []byte, ok bool) {
	i := jsonSkipWS(a.b, a.i)
	if i < len(a.b) && a.b[i] == ',' {
		i = jsonSkipWS(a.b, i+1)
	}
	if i >= len(a.b) || a.b[i] == ']' {
		a.i = len(a.b)
		return nil, false
	}
	end := jsonSkipValue(a.b, i)
	a.i = end
	return a.b[i:end], true
}

// jsonUnquote appends the text of the quoted JSON string q (quotes
// included) to dst, replacing invalid UTF-8 and lone surrogates with U+FFFD
// as encoding/json does.
func jsonUnquote(dst, q []byte) []byte {
	s := q[1 : len(q)-1]
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			i++
			switch s[i] {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := hex4(s[i+1:])
				i += 4
				if utf16IsSurrogate(r) {
					r2 := rune(-1)
					if i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
						r2 = hex4(s[i+3:])
					}
					if r <= 0xdbff && r2 >= 0xdc00 && r2 <= 0xdfff {
						r = (r-0xd800)<<10 | (r2 - 0xdc00) + 0x10000
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				dst = utf8.AppendRune(dst, r)
			default: // '"', '\\', '/'
				dst = append(dst, s[i])
			}
			i++
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, "\uFFFD"...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
		}
	}
	return dst
}

func utf16IsSurrogate(r rune) bool { return r >= 0xd800 && r <= 0xdfff }

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// jsonString returns the text of the quoted JSON string q.
func jsonString(q []byte) string {
	if s := q[1 : len(q)-1]; !containsBackslash(s) && utf8.Valid(s) {
		return string(s)
	}
	return string(jsonUnquote(nil, q))
}

func containsBackslash(s []byte) bool {
	for _, c := range s {
		if c == '\\' {
			return true
		}
	}
	return false
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a quoted JSON string, escaped as
// encoding/json escapes it (without HTML escaping): invalid UTF-8 becomes
// U+FFFD and U+2028, U+2029 are escaped for JavaScript.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// bytesToString views b as a string without copying; the string must not
// outlive b or be kept.
func bytesToString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// appendJSONFloat appends f as encoding/json formats it; NaN and infinities,
// which JSON cannot carry, become null.
func appendJSONFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' {
		// 1e-07 reads better as 1e-7.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

var errBadJSON = errors.New("not a JSON value that msgpack can carry")

// JSONToMsgpack appends the msgpack form of the JSON value js to dst.
// Integers stay integers (int64, or uint64 above the int64 range; larger
// ones become float64), other numbers become float64, objects become maps
// with string keys in their order in js, invalid UTF-8 in strings becomes
// U+FFFD. It validates as it converts, as strictly as json.Valid, and
// refuses numbers beyond the float64 range.
func JSONToMsgpack(dst, js []byte) ([]byte, error) {
	c := jsonConverter{b: js}
	out, i, err := c.value(dst, 0)
	if err == nil && jsonSkipWS(js, i) != len(js) {
		err = errBadJSON
	}
	if err != nil {
		return dst, err
	}
	return out, nil
}

// jsonConverter is a recursive-descent JSON parser that writes msgpack.
type jsonConverter struct {
	b       []byte
	depth   int
	scratch []byte
}

func (c *jsonConverter) value(dst []byte, i int) ([]byte, int, error) {
	b := c.b
	i = jsonSkipWS(b, i)
	if i >= len(b) {
		return dst, i, errBadJSON
	}
	switch ch := b[i]; {
	case ch == '"':
		return c.str(dst, i)
	case ch == '{' || ch == '[':
		return c.container(dst, i)
	case ch == 't':
		return c.literal(dst, i, "true", mpTrue)
	case ch == 'f':
		return c.literal(dst, i, "false", mpFalse)
	case ch == 'n':
		return c.literal(dst, i, "null", mpNil)
	case ch == '-' || ch >= '0' && ch <= '9':
		return c.number(dst, i)
	}
	return dst, i, errBadJSON
}

func (c *jsonConverter) literal(dst []byte, i int, word string, code byte) ([]byte, int, error) {
	if len(c.b)-i < len(word) || string(c.b[i:i+len(word)]) != word {
		return dst, i, errBadJSON
	}
	return append(dst, code), i + len(word), nil
}

// container converts an object or array. The msgpack header needs the
// entry count, known only at the end: one byte is reserved for it and
// patchMsgpackHeader makes room when more are needed.
func (c *jsonConverter) container(dst []byte, i int) ([]byte, int, error) {
	b := c.b
	isMap := b[i] == '{'
	closer := byte(']')
	if isMap {
		closer = '}'
	}
	if c.depth++; c.depth > maxDepth {
		return dst, i, errBadJSON
	}
	pos := len(dst)
	dst = append(dst, 0)
	n := 0
	i = jsonSkipWS(b, i+1)
	if i < len(b) && b[i] == closer {
		c.depth--
		return patchMsgpackHeader(dst, pos, 0, isMap), i + 1, nil
	}
	for {
		var err error
		if isMap {
			i = jsonSkipWS(b, i)
			if i >= len(b) || b[i] != '"' {
				return dst, i, errBadJSON
			}
			if dst, i, err = c.str(dst, i); err != nil {
				return dst, i, err
			}
			i = jsonSkipWS(b, i)
			if i >= len(b) || b[i] != ':' {
				return dst, i, errBadJSON
			}
			i++
		}
		if dst, i, err = c.value(dst, i); err != nil {
			return dst, i, err
		}
		n++
		i = jsonSkipWS(b, i)
		if i >= len(b) {
			return dst, i, errBadJSON
		}
		if b[i] == ',' {
			i++
			continue
		}
		if b[i] != closer {
			return dst, i, errBadJSON
		}
		c.depth--
		return patchMsgpackHeader(dst, pos, n, isMap), i + 1, nil
	}
}

func (c *jsonConverter) str(dst []byte, i int) ([]byte, int, error) {
	b := c.b
	j := i + 1
	escaped, ascii := false, true
	for {
		if j >= len(b) {
			return dst, j, errBadJSON
		}
		ch := b[j]
		if ch == '"' {
			break
		}
		switch {
		case ch < 0x20:
			return dst, j, errBadJSON
		case ch == '\\':
			escaped = true
			if j+1 >= len(b) {
				return dst, j, errBadJSON
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if len(b)-j < 6 || !isHex(b[j+2]) || !isHex(b[j+3]) || !isHex(b[j+4]) || !isHex(b[j+5]) {
					return dst, j, errBadJSON
				}
				j += 6
			default:
				return dst, j, errBadJSON
			}
			continue
		case ch >= utf8.RuneSelf:
			ascii = false
		}
		j++
	}
	raw := b[i+1 : j]
	if !escaped && (ascii || utf8.Valid(raw)) {
		return appendMsgpackStrBytes(dst, raw), j + 1, nil
	}
	c.scratch = jsonUnquote(c.scratch[:0], b[i:j+1])
	return appendMsgpackStrBytes(dst, c.scratch), j + 1, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (c *jsonConverter) number(dst []byte, i int) ([]byte, int, error) {
	b := c.b
	start := i
	neg := b[i] == '-'
	if neg {
		i++
	}
	// The digits are accumulated into mant while they fit, and the number
	// is mant * 10^exp10: small enough ones convert without strconv.
	var mant uint64
	exact := true // mant holds every digit
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for ; i < len(b) && isDigit(b[i]); i++ {
			d := uint64(b[i] - '0')
			if mant > maxUint64Div10 || mant == maxUint64Div10 && d > math.MaxUint64%10 {
				exact = false
			}
			mant = mant*10 + d
		}
	default:
		return dst, i, errBadJSON
	}
	integer := true
	exp10 := 0
	if i < len(b) && b[i] == '.' {
		integer = false
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return dst, i, errBadJSON
		}
		for ; i < len(b) && isDigit(b[i]); i++ {
			if mant < 1e18 {
				mant = mant*10 + uint64(b[i]-'0')
				exp10--
			} else {
				exact = false
			}
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		integer = false
		i++
		negExp := false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			negExp = b[i] == '-'
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return dst, i, errBadJSON
		}
		e := 0
		for ; i < len(b) && isDigit(b[i]); i++ {
			if e < 100000 {
				e = e*10 + int(b[i]-'0')
			}
		}
		if negExp {
			e = -e
		}
		exp10 += e
	}
	if integer && exact {
		switch {
		case !neg:
			return appendMsgpackUint(dst, mant), i, nil
		case mant <= 1<<63:
			return appendMsgpackInt(dst, int64(-mant)), i, nil
		}
	}
	// Both operands exact, so one IEEE operation rounds correctly (the
	// fast path of Clinger's algorithm, as strconv takes it too).
	if !integer && exact && mant <= 1<<53 && exp10 >= -22 && exp10 <= 22 {
		f := float64(mant)
		if exp10 < 0 {
			f /= float64pow10[-exp10]
		} else {
			f *= float64pow10[exp10]
		}
		if neg {
			f = -f
		}
		return appendMsgpackFloat64(dst, f), i, nil
	}
	f, err := strconv.ParseFloat(bytesToString(b[start:i]), 64)
	if err != nil && math.IsInf(f, 0) {
		return dst, i, errors.New("number " + string(b[start:i]) + " is out of the float64 range")
	}
	return appendMsgpackFloat64(dst, f), i, nil
}

const maxUint64Div10 = math.MaxUint64 / 10

var float64pow10 = [...]float64{
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
}
