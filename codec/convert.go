package codec

import (
	"encoding/base64"
	"errors"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/tickfan/tickfan/codec/internal/jsonscan"
	"github.com/tickfan/tickfan/codec/internal/mpack"
)

// A payload reaches clients of both formats: these convert it from the
// encoding it was published in to the other, once per publication.

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
	if err == nil && jsonscan.SkipWS(js, i) != len(js) {
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
	i = jsonscan.SkipWS(b, i)
	if i >= len(b) {
		return dst, i, errBadJSON
	}
	switch ch := b[i]; {
	case ch == '"':
		return c.str(dst, i)
	case ch == '{' || ch == '[':
		return c.container(dst, i)
	case ch == 't':
		return c.literal(dst, i, "true", mpack.True)
	case ch == 'f':
		return c.literal(dst, i, "false", mpack.False)
	case ch == 'n':
		return c.literal(dst, i, "null", mpack.Nil)
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
// mpack.PatchHeader makes room when more are needed.
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
	i = jsonscan.SkipWS(b, i+1)
	if i < len(b) && b[i] == closer {
		c.depth--
		return mpack.PatchHeader(dst, pos, 0, isMap), i + 1, nil
	}
	for {
		var err error
		if isMap {
			i = jsonscan.SkipWS(b, i)
			if i >= len(b) || b[i] != '"' {
				return dst, i, errBadJSON
			}
			if dst, i, err = c.str(dst, i); err != nil {
				return dst, i, err
			}
			i = jsonscan.SkipWS(b, i)
			if i >= len(b) || b[i] != ':' {
				return dst, i, errBadJSON
			}
			i++
		}
		if dst, i, err = c.value(dst, i); err != nil {
			return dst, i, err
		}
		n++
		i = jsonscan.SkipWS(b, i)
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
		return mpack.PatchHeader(dst, pos, n, isMap), i + 1, nil
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
		return mpack.AppendStrBytes(dst, raw), j + 1, nil
	}
	c.scratch = jsonscan.AppendText(c.scratch[:0], raw)
	return mpack.AppendStrBytes(dst, c.scratch), j + 1, nil
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
			return mpack.AppendUint(dst, mant), i, nil
		case mant <= 1<<63:
			return mpack.AppendInt(dst, int64(-mant)), i, nil
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
		return mpack.AppendFloat64(dst, f), i, nil
	}
	f, err := strconv.ParseFloat(bytesToString(b[start:i]), 64)
	if err != nil && math.IsInf(f, 0) {
		return dst, i, errors.New("number " + string(b[start:i]) + " is out of the float64 range")
	}
	return mpack.AppendFloat64(dst, f), i, nil
}

const maxUint64Div10 = math.MaxUint64 / 10

var float64pow10 = [...]float64{
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
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
	case mpack.Nil:
		return append(dst, "null"...), i + 1
	case mpack.False:
		return append(dst, "false"...), i + 1
	case mpack.True:
		return append(dst, "true"...), i + 1
	case 0xc4, 0xc5, 0xc6: // bin
		w := 1 << (c - 0xc4)
		n := int(mpack.BigEndian(b[i+1 : i+1+w]))
		start := i + 1 + w
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, b[start:start+n])
		return append(dst, '"'), start + n
	case 0xca:
		return appendJSONFloat(dst, float64(math.Float32frombits(uint32(mpack.BigEndian(b[i+1:i+5])))), 32), i + 5
	case 0xcb:
		return appendJSONFloat(dst, math.Float64frombits(mpack.BigEndian(b[i+1:i+9])), 64), i + 9
	case 0xcc, 0xcd, 0xce, 0xcf:
		w := 1 << (c - 0xcc)
		return appendUintText(dst, mpack.BigEndian(b[i+1:i+1+w])), i + 1 + w
	case 0xd0:
		return appendIntText(dst, int64(int8(b[i+1]))), i + 2
	case 0xd1:
		return appendIntText(dst, int64(int16(mpack.BigEndian(b[i+1:i+3])))), i + 3
	case 0xd2:
		return appendIntText(dst, int64(int32(mpack.BigEndian(b[i+1:i+5])))), i + 5
	case 0xd3:
		return appendIntText(dst, int64(mpack.BigEndian(b[i+1:i+9]))), i + 9
	case 0xd9, 0xda, 0xdb: // str
		w := 1 << (c - 0xd9)
		n := int(mpack.BigEndian(b[i+1 : i+1+w]))
		start := i + 1 + w
		return appendJSONString(dst, bytesToString(b[start:start+n])), start + n
	case 0xdc:
		return mpArrayToJSON(dst, b, i+3, int(mpack.BigEndian(b[i+1:i+3])))
	case 0xdd:
		return mpArrayToJSON(dst, b, i+5, int(mpack.BigEndian(b[i+1:i+5])))
	case 0xde:
		return mpMapToJSON(dst, b, i+3, int(mpack.BigEndian(b[i+1:i+3])))
	case 0xdf:
		return mpMapToJSON(dst, b, i+5, int(mpack.BigEndian(b[i+1:i+5])))
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
		if s, ok := mpack.Str(b[i:]); ok {
			dst = appendJSONString(dst, bytesToString(s))
			i = mpack.SkipJSONable(b, i)
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
