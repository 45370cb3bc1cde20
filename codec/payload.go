package codec

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/tickfan/tickfan/codec/internal/jsonscan"
	"github.com/tickfan/tickfan/codec/internal/mpack"
)

// A payload ("d") is any value JSON can carry, and JSON and msgpack clients
// get the same value (PROTOCOL.md, Messages): the rules for what a payload
// may be, in either encoding, are here.

// maxDepth bounds the nesting of arrays and maps in a payload. It is the
// limit encoding/json applies, so JSON and msgpack payloads get the same one
// and the recursive converters stay on a small stack.
const maxDepth = mpack.MaxDepth

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
			i, _ = jsonscan.StringEnd(b, i)
		case c == '-' || c >= '0' && c <= '9':
			end := jsonscan.NumberEnd(b, i)
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

// ValidMsgpack reports whether b is exactly one msgpack value, with nothing
// after it, that JSON can carry (no ext types, no map or array as a map
// key, nesting within the JSON limit).
func ValidMsgpack(b []byte) bool {
	return len(b) > 0 && mpack.SkipJSONable(b, 0) == len(b)
}

// convertPayload appends data, given in JSON or msgpack, to dst in the
// other encoding. Data that does not convert (the broker let through what
// the codec would have refused) becomes null rather than a broken frame.
func convertPayload(dst, data []byte, fromMsgpack, toMsgpack bool) []byte {
	var out []byte
	var err error
	switch {
	case len(data) == 0:
		err = errBadJSON
	case fromMsgpack == toMsgpack:
		return append(dst, data...)
	case toMsgpack:
		out, err = JSONToMsgpack(dst, data)
	default:
		out, err = MsgpackToJSON(dst, data)
	}
	if err != nil {
		if toMsgpack {
			return append(dst[:0], msgpackNull...)
		}
		return append(dst[:0], jsonNull...)
	}
	return out
}

var (
	jsonNull    = []byte("null")
	msgpackNull = []byte{mpack.Nil}
)
