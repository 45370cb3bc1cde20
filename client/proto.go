package client

import "fmt"

// Proto is the transport and encoding of a connection; its values are the
// names the CLI and the bench take on their command lines.
type Proto string

// The transports of PROTOCOL.md.
const (
	WSJSON    Proto = "ws-json"    // WebSocket text frames, tickfan.v1.json
	WSMsgpack Proto = "ws-msgpack" // WebSocket binary frames, tickfan.v1.msgpack
	TCP       Proto = "tcp"        // 4-byte big-endian length, then a msgpack map
)

// ParseProto checks the name of a transport.
func ParseProto(s string) (Proto, error) {
	switch p := Proto(s); p {
	case WSJSON, WSMsgpack, TCP:
		return p, nil
	}
	return "", fmt.Errorf("unknown proto %q: want ws-json, ws-msgpack or tcp", s)
}

// Msgpack reports whether messages of p are msgpack (else JSON).
func (p Proto) Msgpack() bool { return p != WSJSON }

// WebSocket reports whether p runs over WebSocket (else raw TCP).
func (p Proto) WebSocket() bool { return p != TCP }

// Subprotocol is the WebSocket subprotocol that p offers.
func (p Proto) Subprotocol() string {
	if p == WSMsgpack {
		return "tickfan.v1.msgpack"
	}
	return "tickfan.v1.json"
}
