package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/tickfan/tickfan/client"
)

// Centrifugo v5's client protocol, JSON over WebSocket, as far as a
// subscriber of the head-to-head needs it. A client sends
// {"id":1,"connect":{}} and {"id":N,"subscribe":{"channel":"..."}} and gets
// replies with the same id; publications come as
// {"push":{"channel":"...","pub":{"data":...,"offset":N}}}; the server's
// ping is {} and wants {} back (ping-pong of protocol v2). Several of these
// may come newline-joined in one frame.

// cfKind is what one Centrifugo message is.
type cfKind int

const (
	cfOther cfKind = iota // a push of another kind (join, leave, ...)
	cfPing                // {}: answer {}
	cfReply               // an answer to a command, by id
	cfPub                 // a publication
)

// cfMessage is one message of a frame. Its slices point into the frame.
type cfMessage struct {
	kind    cfKind
	id      uint64
	channel []byte
	data    []byte // the publication's data, raw JSON
	offset  uint64
	// hasOffset says a reply or publication gave an offset (a subscribe
	// reply does with positioning or recovery on).
	hasOffset bool
	epoch     string
	errMsg    string // a reply's error, "" for none
}

// cfSubscribe is a subscribe command's text.
func cfSubscribe(id uint64, channel string) []byte {
	b := []byte(`{"id":`)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"subscribe":{"channel":`...)
	b = strconv.AppendQuote(b, channel)
	return append(b, `}}`...)
}

var cfConnect = []byte(`{"id":1,"connect":{}}`)

// parseCentrifugoFrame calls fn for each message of a text frame.
func parseCentrifugoFrame(frame []byte, fn func(*cfMessage)) error {
	var m cfMessage
	for len(frame) > 0 {
		line := frame
		if i := bytes.IndexByte(frame, '\n'); i >= 0 {
			line, frame = frame[:i], frame[i+1:]
		} else {
			frame = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		m = cfMessage{}
		if !scanCentrifugoPush(line, &m) {
			if err := decodeCentrifugo(line, &m); err != nil {
				return err
			}
		}
		fn(&m)
	}
	return nil
}

var (
	cfPushPrefix = []byte(`{"push":{"channel":"`)
	cfPubData    = []byte(`","pub":{"data":`)
	cfOffsetKey  = []byte(`,"offset":`)
)

// scanCentrifugoPush reads a publication push in the shape Centrifugo
// writes it, {"push":{"channel":"c","pub":{"data":D,"offset":N}}}, without
// decoding D: the bench reads tens of thousands a second. Anything else
// (another field order, tags, escapes) is left to decodeCentrifugo.
func scanCentrifugoPush(b []byte, m *cfMessage) bool {
	if !bytes.HasPrefix(b, cfPushPrefix) {
		return false
	}
	rest := b[len(cfPushPrefix):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return false
	}
	channel := rest[:end]
	rest = rest[end:]
	if !bytes.HasPrefix(rest, cfPubData) {
		return false
	}
	rest = rest[len(cfPubData):]
	// The pub ends with ,"offset":N}}} when it has an offset; the data
	// before it is whatever JSON the publisher sent.
	if !bytes.HasSuffix(rest, []byte("}}}")) {
		return false
	}
	body := rest[:len(rest)-3]
	k := bytes.LastIndex(body, cfOffsetKey)
	if k < 0 {
		return false
	}
	off, next, ok := jsonUintAt(body, k+len(cfOffsetKey))
	if !ok || next != len(body) {
		return false
	}
	*m = cfMessage{kind: cfPub, channel: channel, data: body[:k], offset: off, hasOffset: true}
	return true
}

// cfWire is a message decoded the slow way.
type cfWire struct {
	ID    uint64 `json:"id"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Subscribe *struct {
		Offset *uint64 `json:"offset"`
		Epoch  string  `json:"epoch"`
	} `json:"subscribe"`
	Push *struct {
		Channel string `json:"channel"`
		Pub     *struct {
			Data   json.RawMessage `json:"data"`
			Offset uint64          `json:"offset"`
		} `json:"pub"`
	} `json:"push"`
}

func decodeCentrifugo(line []byte, m *cfMessage) error {
	if bytes.Equal(line, []byte("{}")) {
		m.kind = cfPing
		return nil
	}
	var w cfWire
	if err := json.Unmarshal(line, &w); err != nil {
		return fmt.Errorf("centrifugo message %q: %w", client.Clip(line), err)
	}
	switch {
	case w.ID > 0:
		m.kind, m.id = cfReply, w.ID
		if w.Error != nil {
			m.errMsg = fmt.Sprintf("%d %s", w.Error.Code, w.Error.Message)
		}
		if s := w.Subscribe; s != nil && s.Offset != nil {
			m.offset, m.hasOffset, m.epoch = *s.Offset, true, s.Epoch
		}
	case w.Push != nil && w.Push.Pub != nil:
		m.kind, m.channel, m.data = cfPub, []byte(w.Push.Channel), w.Push.Pub.Data
		m.offset, m.hasOffset = w.Push.Pub.Offset, w.Push.Pub.Offset > 0
	default:
		m.kind = cfOther
	}
	return nil
}
