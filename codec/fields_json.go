package codec

import (
	"unicode/utf8"

	"github.com/tickfan/tickfan/codec/internal/jsonscan"
)

// jsonFields reads the fields of a JSON text message.
type jsonFields struct{}

func (*jsonFields) message(body []byte) (cursor, error) {
	// The scanner trusts the text to be valid: check it all first.
	if !jsonscan.Valid(body) {
		return cursor{}, errNotJSON
	}
	i, ok := jsonscan.Open(body, jsonscan.SkipWS(body, 0), '{')
	if !ok {
		return cursor{}, errNotJSONObject
	}
	return cursor{i: i}, nil
}

func (*jsonFields) mapOf(v []byte) (cursor, bool) {
	i, ok := jsonscan.Open(v, 0, '{')
	return cursor{i: i}, ok
}

func (*jsonFields) next(b []byte, c cursor) (cursor, []byte, []byte, fieldFlags) {
	key, val, i, ok := jsonscan.Member(b, c.i)
	if !ok {
		return cursor{i: i}, nil, nil, 0
	}
	key = key[1 : len(key)-1]
	flags := keyIsStr
	if !jsonscan.Plain(key) {
		flags |= keyEscaped
	}
	if val[0] == 'n' {
		flags |= valNull
	}
	return cursor{i: i}, key, val, flags
}

func (*jsonFields) str(v []byte) (string, bool) {
	if v[0] != '"' {
		return "", false
	}
	return jsonscan.Text(v), true
}

func (*jsonFields) uint(v []byte) (uint64, bool) { return jsonscan.Uint(v) }

func (*jsonFields) strs(dst []string, v []byte) ([]string, bool) {
	i, ok := jsonscan.Open(v, 0, '[')
	if !ok {
		return dst, false
	}
	for {
		var e []byte
		if e, i, ok = jsonscan.Element(v, i); !ok {
			return dst, true
		}
		if e[0] != '"' {
			return dst, false
		}
		dst = append(dst, jsonscan.Text(e))
	}
}

// payload: text frames must be UTF-8, and a msgpack client gets each number
// as a float64.
func (*jsonFields) payload(v []byte) bool { return utf8.Valid(v) && jsonNumbersFinite(v) }
