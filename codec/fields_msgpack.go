package codec

import "github.com/tickfan/tickfan/codec/internal/mpack"

// msgpackFields reads the fields of a msgpack message.
type msgpackFields struct{}

func (*msgpackFields) message(body []byte) (cursor, error) {
	// next steps over values without checks: check them all first.
	if len(body) == 0 || mpack.Skip(body, 0) != len(body) {
		return cursor{}, errNotMsgpack
	}
	n, i, ok := mpack.MapHeader(body, 0)
	if !ok {
		return cursor{}, errNotMsgpackMap
	}
	return cursor{i: i, left: n}, nil
}

func (*msgpackFields) mapOf(v []byte) (cursor, bool) {
	n, i, ok := mpack.MapHeader(v, 0)
	return cursor{i: i, left: n}, ok
}

func (*msgpackFields) next(b []byte, c cursor) (cursor, []byte, []byte, fieldFlags) {
	if c.left == 0 {
		return c, nil, nil, 0
	}
	key, isStr, kend := mpack.Key(b, c.i)
	vend := mpack.End(b, kend)
	var flags fieldFlags
	if isStr {
		flags = keyIsStr
	}
	val := b[kend:vend]
	if val[0] == mpack.Nil {
		flags |= valNull
	}
	return cursor{i: vend, left: c.left - 1}, key, val, flags
}

func (*msgpackFields) str(v []byte) (string, bool) {
	s, ok := mpack.Str(v)
	if !ok {
		return "", false
	}
	return string(s), true
}

func (*msgpackFields) uint(v []byte) (uint64, bool) { return mpack.Uint(v) }

func (*msgpackFields) strs(dst []string, v []byte) ([]string, bool) {
	n, i, ok := mpack.ArrayHeader(v, 0)
	if !ok {
		return dst, false
	}
	for ; n > 0; n-- {
		end := mpack.End(v, i)
		s, ok := mpack.Str(v[i:end])
		if !ok {
			return dst, false
		}
		dst = append(dst, string(s))
		i = end
	}
	return dst, true
}

// payload: a JSON client gets the same value, so it must have a JSON form.
func (*msgpackFields) payload(v []byte) bool { return ValidMsgpack(v) }
