package client

import (
	"encoding/json"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Position is the last publication a client holds of a topic: the "since"
// of a sub and a pull, and the res of a pub (PROTOCOL.md).
type Position struct {
	E string `json:"e" msgpack:"e"`
	S uint64 `json:"s" msgpack:"s"`
}

// The Append functions below append one command framed for p (see
// AppendFrame), with id as its request id; the reply carries that id.
// They encode with encoding/json or vmihailenco/msgpack: commands are few
// next to what the server sends, and a hot publisher builds its own
// frames.

// AppendSub appends {"op":"sub","id":id,"topics":[...],"since":{...}};
// since is left out when empty.
func (p Proto) AppendSub(dst []byte, id uint64, topics []string, since map[string]Position) []byte {
	cmd := map[string]any{"op": "sub", "id": id, "topics": topics}
	if len(since) > 0 {
		cmd["since"] = since
	}
	return p.AppendCommand(dst, cmd)
}

// AppendUnsub appends {"op":"unsub","id":id,"topics":[...]}.
func (p Proto) AppendUnsub(dst []byte, id uint64, topics []string) []byte {
	return p.AppendCommand(dst, map[string]any{"op": "unsub", "id": id, "topics": topics})
}

// AppendPub appends {"op":"pub","id":id,"t":topic,"d":data}, with
// "k":"snap" when snap. data is one value in p's encoding: JSON for
// ws-json, msgpack otherwise.
func (p Proto) AppendPub(dst []byte, id uint64, topic string, data []byte, snap bool) []byte {
	cmd := map[string]any{"op": "pub", "id": id, "t": topic}
	if p.Msgpack() {
		cmd["d"] = msgpack.RawMessage(data)
	} else {
		cmd["d"] = json.RawMessage(data)
	}
	if snap {
		cmd["k"] = "snap"
	}
	return p.AppendCommand(dst, cmd)
}

// AppendPing appends {"op":"ping","id":id}, answered {} in order.
func (p Proto) AppendPing(dst []byte, id uint64) []byte {
	return p.AppendCommand(dst, map[string]any{"op": "ping", "id": id})
}

// AppendAuth appends {"op":"auth","id":id,"token":token}.
func (p Proto) AppendAuth(dst []byte, id uint64, token string) []byte {
	return p.AppendCommand(dst, map[string]any{"op": "auth", "id": id, "token": token})
}

// AppendRefresh appends {"op":"refresh","id":id,"token":token}: a new
// token for a connection already authenticated, sent before the old one
// expires (else the server closes with 4002).
func (p Proto) AppendRefresh(dst []byte, id uint64, token string) []byte {
	return p.AppendCommand(dst, map[string]any{"op": "refresh", "id": id, "token": token})
}

// AppendKeepalive appends {"op":"ping"} without id: an answer to the
// server's TCP heartbeat that asks for none (PROTOCOL.md Heartbeats: any
// frame from the client counts as life).
func (p Proto) AppendKeepalive(dst []byte) []byte {
	return p.AppendCommand(dst, map[string]any{"op": "ping"})
}

// AppendCommand appends any command map, encoded and framed for p. It
// panics if cmd does not encode: commands are built by the program, not
// read from outside.
func (p Proto) AppendCommand(dst []byte, cmd map[string]any) []byte {
	var b []byte
	var err error
	if p.Msgpack() {
		b, err = msgpack.Marshal(cmd)
	} else {
		b, err = json.Marshal(cmd)
	}
	if err != nil {
		panic(fmt.Sprintf("client: encode %v: %v", cmd, err))
	}
	return p.AppendFrame(dst, b)
}
