package codec

import "github.com/tickfan/tickfan/codec/internal/jsonscan"

// fieldReader reads the fields of one message in one wire format, so that
// the command decoder is written once for JSON and msgpack (jsonFields,
// msgpackFields). A reader holds no state: a map is read with a cursor the
// caller passes in and gets back, and values are slices of the message.
// So nothing escapes through the interface calls and nothing is allocated
// to walk a message; arguments and results are kept few enough to travel
// in registers, which keeps the calls cheap.
type fieldReader interface {
	// message checks that body is one whole, well-formed value of the
	// format and returns the cursor of its top-level map; a body that is
	// not gives the 400 error that says which.
	message(body []byte) (cursor, error)
	// mapOf returns the cursor of the map that the value v is; ok is false
	// when v is not a map.
	mapOf(v []byte) (c cursor, ok bool)
	// next returns the field at c of the map b (b is the body or the value
	// given to mapOf), as sent, and the cursor past it. After the last
	// field, val is nil.
	next(b []byte, c cursor) (rest cursor, key, val []byte, flags fieldFlags)
	// str, uint and strs read the value v; ok is false when it is not of
	// that type: a string, an integer that is not negative (any width), a
	// list of strings (appended to dst).
	str(v []byte) (string, bool)
	uint(v []byte) (uint64, bool)
	strs(dst []string, v []byte) ([]string, bool)
	// payload reports whether the value v may be a payload: whether every
	// client format can carry it.
	payload(v []byte) bool
}

// cursor is where the next field of a map starts, and (msgpack, whose
// header counts them) how many fields are left.
type cursor struct {
	i    int
	left int
}

// fieldFlags say what next found besides the bytes. (Separate results,
// not a struct: a struct that large would go through memory.)
type fieldFlags uint8

const (
	// keyIsStr: the key is a string. msgpack allows keys of any type, and
	// no key of ours is anything else.
	keyIsStr fieldFlags = 1 << iota
	// keyEscaped: the key is JSON string content whose text needs its
	// escapes resolved (or its bad UTF-8 replaced); keyText does that.
	keyEscaped
	// valNull: the value is JSON null or msgpack nil.
	valNull
)

func (fl fieldFlags) keyIsStr() bool { return fl&keyIsStr != 0 }
func (fl fieldFlags) null() bool     { return fl&valNull != 0 }

// keyText returns the text of a key that next returned with flags fl, in
// scratch when it needs unescaping (so a short escaped key costs no
// allocation).
func (fl fieldFlags) keyText(key, scratch []byte) []byte {
	if fl&keyEscaped != 0 {
		return jsonscan.AppendText(scratch, key)
	}
	return key
}
