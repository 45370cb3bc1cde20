package codec

import (
	"encoding/json"
	"math"
	"unicode/utf8"

	"github.com/tickfan/tickfan/topic"
)

// Command is one decoded client message. Decode fills it; the zero value is
// ready for use, and one Command may be reused for every message of a loop
// (it is not safe for concurrent use). The next Decode into the same Command
// reuses the Topics array and the Since map: copy them to keep them longer.
// Strings and Data are never shared with the message or the next command.
type Command struct {
	Op    string
	ID    uint64
	HasID bool
	// Topic is "t".
	Topic string
	// Topics is "topics".
	Topics []string
	// Since is "since" of any op but pull: topic to the last position the
	// client holds; nil when absent.
	Since map[string]topic.Position
	// From is "since" of pull; nil when absent.
	From *topic.Position
	// Limit is "limit"; 0 when absent.
	Limit int
	// Data is "d" exactly as sent, in a slice of its own (it never aliases
	// the message); nil when absent. A JSON null is Data "null".
	Data []byte
	// DataMsgpack says Data is msgpack (the message was), else JSON text.
	DataMsgpack bool
	// Kind is "k".
	Kind string
	// Token is "token".
	Token string

	since map[string]topic.Position // Since's map, kept across Decode calls
}

// reset clears cmd for the next message, keeping its Topics array and
// Since map for reuse.
func (cmd *Command) reset() {
	topics := cmd.Topics[:0]
	clear(cmd.Topics[:cap(cmd.Topics)])
	since := cmd.since
	clear(since)
	*cmd = Command{Topics: topics, since: since}
}

func (cmd *Command) sinceMap() map[string]topic.Position {
	if cmd.since == nil {
		cmd.since = make(map[string]topic.Position)
	}
	return cmd.since
}

// Decode decodes one message body, JSON text for WSJSON and a msgpack map
// otherwise, into cmd, which it resets first. Keys it does not know are
// ignored, and a null value counts as absent (but "d": null is the payload
// null). A body that is not one well-formed map, or has a field of the wrong
// type, gives an *Error with code 400. cmd never aliases body.
func Decode(f Format, body []byte, cmd *Command) error {
	cmd.reset()
	var err error
	if f.Msgpack() {
		err = decodeMsgpack(body, cmd)
	} else {
		err = decodeJSON(body, cmd)
	}
	if err != nil {
		// A half-filled command must not be acted on; keep only the id so
		// the caller echoes it: PROTOCOL.md has a map with a valid id get
		// its reply with that id whatever else is wrong in it, and the id
		// may come after the field that failed.
		id, hasID := cmd.ID, cmd.HasID
		if !hasID && err != errID {
			id, hasID = findID(f, body)
		}
		cmd.reset()
		cmd.ID, cmd.HasID = id, hasID
	}
	return err
}

// findID returns the "id" of a well-formed message whose other fields may
// be wrong; ok is false when the message is not a map or its id is absent
// or not an unsigned integer.
func findID(f Format, body []byte) (id uint64, ok bool) {
	if f.Msgpack() {
		if len(body) == 0 || mpSkip(body, 0, false) != len(body) {
			return 0, false
		}
		n, i, isMap := mpContainerLen(body, 0, true)
		if !isMap {
			return 0, false
		}
		for ; n > 0; n-- {
			kend := mpSkip(body, i, false)
			vend := mpSkip(body, kend, false)
			key, keyOK := mpStr(body[i:kend])
			val := body[kend:vend]
			i = vend
			if keyOK && string(key) == "id" && val[0] != mpNil {
				return mpUint(val)
			}
		}
		return 0, false
	}
	if !json.Valid(body) {
		return 0, false
	}
	obj, isObj := newJSONObject(body, jsonSkipWS(body, 0))
	if !isObj {
		return 0, false
	}
	for {
		key, val, more := obj.next()
		if !more {
			return 0, false
		}
		if jsonKeyText(key) == "id" && val[0] != 'n' {
			return jsonUint(val)
		}
	}
}

// Field errors, one per key, so a client sees which field is wrong.
var (
	errNotJSON       = badRequest("message is not valid JSON")
	errNotJSONObject = badRequest("message is not a JSON object")
	errNotMsgpack    = badRequest("message is not valid msgpack")
	errNotMsgpackMap = badRequest("message is not a msgpack map")
	errOp            = badRequest(`"op" must be a string`)
	errID            = badRequest(`"id" must be an unsigned integer`)
	errTopic         = badRequest(`"t" must be a string`)
	errTopics        = badRequest(`"topics" must be a list of strings`)
	errPullSince     = badRequest(`"since" of pull must be {"e":string,"s":unsigned integer}`)
	errSubSince      = badRequest(`"since" must map each topic to {"e":string,"s":unsigned integer}`)
	errLimit         = badRequest(`"limit" must be a non-negative integer`)
	errKind          = badRequest(`"k" must be a string`)
	errToken         = badRequest(`"token" must be a string`)
	errData          = badRequest(`"d" must be a value JSON can carry`)
)

func decodeJSON(body []byte, cmd *Command) error {
	if !json.Valid(body) {
		return errNotJSON
	}
	obj, ok := newJSONObject(body, jsonSkipWS(body, 0))
	if !ok {
		return errNotJSONObject
	}
	var since []byte
	var scratch [16]byte
	for {
		key, val, ok := obj.next()
		if !ok {
			break
		}
		k := key[1 : len(key)-1]
		if containsBackslash(k) {
			k = jsonUnquote(scratch[:0], key)
		}
		isNull := val[0] == 'n'
		if isNull && string(k) != "d" {
			continue
		}
		switch string(k) {
		case "op":
			if cmd.Op, ok = jsonStr(val); !ok {
				return errOp
			}
		case "id":
			if cmd.ID, ok = jsonUint(val); !ok {
				return errID
			}
			cmd.HasID = true
		case "t":
			if cmd.Topic, ok = jsonStr(val); !ok {
				return errTopic
			}
		case "topics":
			arr, ok := newJSONArray(val)
			if !ok {
				return errTopics
			}
			cmd.Topics = cmd.Topics[:0]
			for {
				v, more := arr.next()
				if !more {
					break
				}
				s, ok := jsonStr(v)
				if !ok {
					return errTopics
				}
				cmd.Topics = append(cmd.Topics, s)
			}
		case "since":
			since = val
		case "limit":
			n, ok := jsonUint(val)
			if !ok {
				return errLimit
			}
			cmd.Limit = int(min(n, math.MaxInt32)) // any limit that large means all
		case "d":
			if !utf8.Valid(val) || !jsonNumbersFinite(val) {
				return errData
			}
			cmd.Data = append([]byte(nil), val...)
			cmd.DataMsgpack = false
		case "k":
			if cmd.Kind, ok = jsonStr(val); !ok {
				return errKind
			}
		case "token":
			if cmd.Token, ok = jsonStr(val); !ok {
				return errToken
			}
		}
	}
	if since == nil {
		return nil
	}
	// "since" is read last: its shape depends on "op", which may follow it.
	if cmd.Op == "pull" {
		pos, ok := jsonPosition(since)
		if !ok {
			return errPullSince
		}
		cmd.From = &pos
		return nil
	}
	obj, ok = newJSONObject(since, 0)
	if !ok {
		return errSubSince
	}
	m := cmd.sinceMap()
	for {
		key, val, ok := obj.next()
		if !ok {
			break
		}
		if val[0] == 'n' {
			continue
		}
		pos, ok := jsonPosition(val)
		if !ok {
			return errSubSince
		}
		m[jsonString(key)] = pos
	}
	cmd.Since = m
	return nil
}

// jsonStr returns the text of the JSON string val.
func jsonStr(val []byte) (string, bool) {
	if val[0] != '"' {
		return "", false
	}
	return jsonString(val), true
}

// jsonUint returns the value of val, a JSON number written as an unsigned
// integer: digits only, no sign, fraction or exponent.
func jsonUint(val []byte) (uint64, bool) {
	var u uint64
	for _, c := range val {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if u > (math.MaxUint64-d)/10 {
			return 0, false
		}
		u = u*10 + d
	}
	return u, len(val) > 0
}

// jsonPosition reads {"e":string,"s":unsigned integer}; a missing or null
// field is its zero value.
func jsonPosition(val []byte) (pos topic.Position, ok bool) {
	obj, ok := newJSONObject(val, 0)
	if !ok {
		return pos, false
	}
	for {
		key, v, more := obj.next()
		if !more {
			return pos, true
		}
		if v[0] == 'n' {
			continue
		}
		switch jsonKeyText(key) {
		case "e":
			if pos.Epoch, ok = jsonStr(v); !ok {
				return pos, false
			}
		case "s":
			if pos.Seq, ok = jsonUint(v); !ok {
				return pos, false
			}
		}
	}
}

// jsonKeyText returns a short key for comparison: escaped keys are rare
// and only matter when they spell a known key.
func jsonKeyText(key []byte) string {
	k := key[1 : len(key)-1]
	if containsBackslash(k) {
		return string(jsonUnquote(nil, key))
	}
	return bytesToString(k)
}

func decodeMsgpack(body []byte, cmd *Command) error {
	if len(body) == 0 || mpSkip(body, 0, false) != len(body) {
		return errNotMsgpack
	}
	n, i, ok := mpContainerLen(body, 0, true)
	if !ok {
		return errNotMsgpackMap
	}
	var since []byte
	for ; n > 0; n-- {
		kend := mpSkip(body, i, false)
		key, keyOK := mpStr(body[i:kend])
		vend := mpSkip(body, kend, false)
		val := body[kend:vend]
		i = vend
		if !keyOK {
			continue // a key that is not a string is no key of ours
		}
		if val[0] == mpNil && string(key) != "d" {
			continue
		}
		switch string(key) {
		case "op":
			if cmd.Op, ok = mpString(val); !ok {
				return errOp
			}
		case "id":
			if cmd.ID, ok = mpUint(val); !ok {
				return errID
			}
			cmd.HasID = true
		case "t":
			if cmd.Topic, ok = mpString(val); !ok {
				return errTopic
			}
		case "topics":
			cnt, j, ok := mpContainerLen(val, 0, false)
			if !ok {
				return errTopics
			}
			cmd.Topics = cmd.Topics[:0]
			for ; cnt > 0; cnt-- {
				end := mpSkip(val, j, false)
				s, ok := mpString(val[j:end])
				if !ok {
					return errTopics
				}
				cmd.Topics = append(cmd.Topics, s)
				j = end
			}
		case "since":
			since = val
		case "limit":
			u, ok := mpUint(val)
			if !ok {
				return errLimit
			}
			cmd.Limit = int(min(u, math.MaxInt32))
		case "d":
			if !ValidMsgpack(val) {
				return errData
			}
			cmd.Data = append([]byte(nil), val...)
			cmd.DataMsgpack = true
		case "k":
			if cmd.Kind, ok = mpString(val); !ok {
				return errKind
			}
		case "token":
			if cmd.Token, ok = mpString(val); !ok {
				return errToken
			}
		}
	}
	if since == nil {
		return nil
	}
	if cmd.Op == "pull" {
		pos, ok := mpPosition(since)
		if !ok {
			return errPullSince
		}
		cmd.From = &pos
		return nil
	}
	cnt, j, ok := mpContainerLen(since, 0, true)
	if !ok {
		return errSubSince
	}
	m := cmd.sinceMap()
	for ; cnt > 0; cnt-- {
		kend := mpSkip(since, j, false)
		vend := mpSkip(since, kend, false)
		key, keyOK := mpStr(since[j:kend])
		val := since[kend:vend]
		j = vend
		if val[0] == mpNil {
			continue
		}
		if !keyOK {
			return errSubSince
		}
		pos, ok := mpPosition(val)
		if !ok {
			return errSubSince
		}
		m[string(key)] = pos
	}
	cmd.Since = m
	return nil
}

func mpString(val []byte) (string, bool) {
	s, ok := mpStr(val)
	if !ok {
		return "", false
	}
	return string(s), true
}

// mpPosition reads {"e":str,"s":non-negative int}; a missing or nil field
// is its zero value.
func mpPosition(val []byte) (pos topic.Position, ok bool) {
	n, i, ok := mpContainerLen(val, 0, true)
	if !ok {
		return pos, false
	}
	for ; n > 0; n-- {
		kend := mpSkip(val, i, false)
		vend := mpSkip(val, kend, false)
		key, keyOK := mpStr(val[i:kend])
		v := val[kend:vend]
		i = vend
		if !keyOK || v[0] == mpNil {
			continue
		}
		switch string(key) {
		case "e":
			if pos.Epoch, ok = mpString(v); !ok {
				return pos, false
			}
		case "s":
			if pos.Seq, ok = mpUint(v); !ok {
				return pos, false
			}
		}
	}
	return pos, true
}
