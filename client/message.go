package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/tickfan/tickfan/codec"
)

// Kind says what a message from the server is.
type Kind uint8

// The kinds of PROTOCOL.md "Server to client".
const (
	KindUnknown     Kind = iota // an op this client does not know; Op names it
	KindPublication             // {"t","s","d"} and "k":"snap" on a snapshot
	KindReply                   // {"id","res"} or {"id","err"}; id absent when the command had none
	KindReset                   // {"op":"reset","t","e","s"}
	KindLag                     // {"op":"lag","t","s"}
	KindClose                   // {"op":"close","code","reason"}, just before the server closes
	KindPing                    // {"op":"ping"}: the TCP heartbeat
)

func (k Kind) String() string {
	switch k {
	case KindPublication:
		return "publication"
	case KindReply:
		return "reply"
	case KindReset:
		return "reset"
	case KindLag:
		return "lag"
	case KindClose:
		return "close"
	case KindPing:
		return "ping"
	}
	return "unknown"
}

// Message is one message from the server, decoded. Which fields are set
// depends on Kind; the others are zero.
type Message struct {
	Kind Kind
	Op   string // as sent; "" for publications and replies

	Topic string // t: publication, reset, lag
	Seq   uint64 // s: publication, reset, lag (the last seq held)
	Epoch string // e: reset
	Data  []byte // d: a publication's payload, in the connection's encoding
	Snap  bool   // k == "snap": the publication is a snapshot

	ID    uint64       // id: reply, when HasID
	HasID bool         // false for an error to a message without a valid id
	Res   []byte       // res: a successful reply, in the connection's encoding (see DecodeRes)
	Err   *codec.Error // err: a refused command, with its PROTOCOL.md code

	Code   int    // close: the close code (4000-4007)
	Reason string // close

	mp bool
}

// DecodeRes decodes a reply's res into v (a map or struct with json and
// msgpack tags, such as map[string]SubResult for a sub, Position for a
// pub).
func (m Message) DecodeRes(v any) error { return m.decodeRaw(m.Res, v) }

// DecodeData decodes a publication's payload into v.
func (m Message) DecodeData(v any) error { return m.decodeRaw(m.Data, v) }

func (m Message) decodeRaw(b []byte, v any) error {
	if len(b) == 0 {
		return errors.New("nothing to decode")
	}
	if m.mp {
		return msgpack.Unmarshal(b, v)
	}
	return json.Unmarshal(b, v)
}

// SubResult is one topic of a sub reply: where the topic stands, and
// whether the publications after since follow (Rec).
type SubResult struct {
	E   string `json:"e" msgpack:"e"`
	S   uint64 `json:"s" msgpack:"s"`
	Rec bool   `json:"rec" msgpack:"rec"`
}

// wireMessage is every key a server message may carry.
type wireMessage struct {
	Op     string             `json:"op" msgpack:"op"`
	ID     *uint64            `json:"id" msgpack:"id"`
	T      string             `json:"t" msgpack:"t"`
	S      uint64             `json:"s" msgpack:"s"`
	E      string             `json:"e" msgpack:"e"`
	K      string             `json:"k" msgpack:"k"`
	Code   int                `json:"code" msgpack:"code"`
	Reason string             `json:"reason" msgpack:"reason"`
	Err    *codec.Error       `json:"err" msgpack:"err"`
	ResJS  json.RawMessage    `json:"res" msgpack:"-"`
	ResMP  msgpack.RawMessage `json:"-" msgpack:"res"`
	DJS    json.RawMessage    `json:"d" msgpack:"-"`
	DMP    msgpack.RawMessage `json:"-" msgpack:"d"`
}

// Decode decodes one message body, msgpack when mp and JSON otherwise,
// with encoding/json or vmihailenco/msgpack. The message never aliases
// body. Publications on a hot path should go through ScanPublication
// first, which does not allocate.
func Decode(body []byte, mp bool) (Message, error) {
	var w wireMessage
	var err error
	if mp {
		// One value and nothing after it, as encoding/json insists for
		// JSON (msgpack.Unmarshal would ignore what follows).
		if codec.ValidMsgpack(body) {
			err = msgpack.Unmarshal(body, &w)
		} else {
			err = errors.New("not one msgpack value with nothing after it")
		}
	} else {
		err = json.Unmarshal(body, &w)
	}
	if err != nil {
		return Message{}, fmt.Errorf("undecodable message %q: %w", Clip(body), err)
	}
	m := Message{Op: w.Op, Topic: w.T, Seq: w.S, Epoch: w.E, Code: w.Code, Reason: w.Reason, Err: w.Err, mp: mp}
	if w.ID != nil {
		m.ID, m.HasID = *w.ID, true
	}
	if mp {
		m.Res, m.Data = w.ResMP, w.DMP
	} else {
		m.Res, m.Data = w.ResJS, w.DJS
	}
	switch w.Op {
	case "":
		switch {
		case m.HasID || m.Err != nil || len(m.Res) > 0:
			m.Kind = KindReply
		case m.Topic != "":
			m.Kind, m.Snap = KindPublication, w.K == "snap"
			if len(m.Data) == 0 {
				// A payload of nil (msgpack's 0xc0) comes out of the
				// decoder as no bytes at all: the publication's d is
				// null, which is what it says.
				m.Data = nullValue(mp)
			}
		default:
			return Message{}, fmt.Errorf("message %q is neither a publication nor a reply", Clip(body))
		}
	case "reset":
		m.Kind = KindReset
	case "lag":
		m.Kind = KindLag
	case "close":
		m.Kind = KindClose
	case "ping":
		m.Kind = KindPing
	}
	return m, nil
}

// Clip shortens a message for an error text.
func Clip(b []byte) string {
	s := string(b)
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// nullValue is null in the connection's encoding.
func nullValue(mp bool) []byte {
	if mp {
		return []byte{0xc0}
	}
	return []byte("null")
}
