package codec

import (
	"math"

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
	r := readerFor(f)
	err := decode(r, body, cmd)
	if err != nil {
		// A half-filled command must not be acted on; keep only the id so
		// the caller echoes it: PROTOCOL.md has a map with a valid id get
		// its reply with that id whatever else is wrong in it, and the id
		// may come after the field that failed.
		id, hasID := cmd.ID, cmd.HasID
		if !hasID && err != errID {
			id, hasID = findID(r, body)
		}
		cmd.reset()
		cmd.ID, cmd.HasID = id, hasID
		return err
	}
	if cmd.Data != nil {
		cmd.DataMsgpack = f.Msgpack()
	}
	return nil
}

var (
	jsonReader    fieldReader = &jsonFields{}
	msgpackReader fieldReader = &msgpackFields{}
)

func readerFor(f Format) fieldReader {
	if f.Msgpack() {
		return msgpackReader
	}
	return jsonReader
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

// decode reads the fields of body into cmd, in whichever format r reads.
// It stops at the first field that is wrong; cmd then holds the fields
// before it, the id among them when it came first.
func decode(r fieldReader, body []byte, cmd *Command) error {
	c, err := r.message(body)
	if err != nil {
		return err
	}
	var since []byte
	var scratch [16]byte
	for {
		var key, val []byte
		var fl fieldFlags
		if c, key, val, fl = r.next(body, c); val == nil {
			break
		}
		if !fl.keyIsStr() {
			continue // a key that is not a string is no key of ours
		}
		key = fl.keyText(key, scratch[:0])
		var ok bool
		if fl.null() && string(key) != "d" {
			continue
		}
		switch string(key) {
		case "op":
			if cmd.Op, ok = r.str(val); !ok {
				return errOp
			}
		case "id":
			if cmd.ID, ok = r.uint(val); !ok {
				return errID
			}
			cmd.HasID = true
		case "t":
			if cmd.Topic, ok = r.str(val); !ok {
				return errTopic
			}
		case "topics":
			if cmd.Topics, ok = r.strs(cmd.Topics[:0], val); !ok {
				return errTopics
			}
		case "since":
			since = val
		case "limit":
			n, ok := r.uint(val)
			if !ok {
				return errLimit
			}
			cmd.Limit = int(min(n, math.MaxInt32)) // any limit that large means all
		case "d":
			if !r.payload(val) {
				return errData
			}
			cmd.Data = append([]byte(nil), val...)
		case "k":
			if cmd.Kind, ok = r.str(val); !ok {
				return errKind
			}
		case "token":
			if cmd.Token, ok = r.str(val); !ok {
				return errToken
			}
		}
	}
	if since == nil {
		return nil
	}
	// "since" is read last: its shape depends on "op", which may follow it.
	if cmd.Op == "pull" {
		pos, ok := readPosition(r, since)
		if !ok {
			return errPullSince
		}
		cmd.From = &pos
		return nil
	}
	c, ok := r.mapOf(since)
	if !ok {
		return errSubSince
	}
	positions := cmd.sinceMap()
	for {
		var key, val []byte
		var fl fieldFlags
		if c, key, val, fl = r.next(since, c); val == nil {
			break
		}
		if fl.null() {
			continue
		}
		if !fl.keyIsStr() {
			return errSubSince
		}
		pos, ok := readPosition(r, val)
		if !ok {
			return errSubSince
		}
		positions[string(fl.keyText(key, scratch[:0]))] = pos
	}
	cmd.Since = positions
	return nil
}

// readPosition reads {"e":string,"s":unsigned integer}; a missing or null
// field is its zero value.
func readPosition(r fieldReader, v []byte) (pos topic.Position, ok bool) {
	c, ok := r.mapOf(v)
	if !ok {
		return pos, false
	}
	var scratch [16]byte
	for {
		var key, val []byte
		var fl fieldFlags
		if c, key, val, fl = r.next(v, c); val == nil {
			return pos, true
		}
		if !fl.keyIsStr() || fl.null() {
			continue
		}
		switch string(fl.keyText(key, scratch[:0])) {
		case "e":
			if pos.Epoch, ok = r.str(val); !ok {
				return pos, false
			}
		case "s":
			if pos.Seq, ok = r.uint(val); !ok {
				return pos, false
			}
		}
	}
}

// findID returns the "id" of a well-formed message whose other fields may
// be wrong; ok is false when the message is not a map or its id is absent
// or not an unsigned integer.
func findID(r fieldReader, body []byte) (id uint64, ok bool) {
	c, err := r.message(body)
	if err != nil {
		return 0, false
	}
	var scratch [16]byte
	for {
		var key, val []byte
		var fl fieldFlags
		if c, key, val, fl = r.next(body, c); val == nil {
			return 0, false
		}
		if fl.keyIsStr() && !fl.null() && string(fl.keyText(key, scratch[:0])) == "id" {
			return r.uint(val)
		}
	}
}
