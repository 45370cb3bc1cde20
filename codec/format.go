package codec

import "strconv"

// Format is the wire format of a connection's frames.
type Format uint8

const (
	// WSJSON is WebSocket text frames carrying JSON (subprotocol
	// tickfan.v1.json, the default).
	WSJSON Format = iota
	// WSMsgpack is WebSocket binary frames carrying msgpack
	// (tickfan.v1.msgpack).
	WSMsgpack
	// TCPMsgpack is a 4-byte big-endian length N, then N bytes of one
	// msgpack map.
	TCPMsgpack
)

// Msgpack reports whether frames of f carry msgpack.
func (f Format) Msgpack() bool { return f == WSMsgpack || f == TCPMsgpack }

// WebSocket reports whether frames of f are WebSocket frames.
func (f Format) WebSocket() bool { return f == WSJSON || f == WSMsgpack }

func (f Format) String() string {
	switch f {
	case WSJSON:
		return "ws-json"
	case WSMsgpack:
		return "ws-msgpack"
	case TCPMsgpack:
		return "tcp-msgpack"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// Error codes of PROTOCOL.md, carried in {"err":{"code":C,...}}.
const (
	CodeBadRequest        = 400
	CodeUnauthorized      = 401 // not authenticated
	CodeForbidden         = 403 // authenticated, lacks the permission
	CodeUnknownOp         = 404
	CodeAlreadySubscribed = 409
	CodeGone              = 410 // history range no longer held
	CodeTooLarge          = 413
	CodeTooMany           = 429 // rate or limit
	CodeInternal          = 500
	CodeUnavailable       = 503 // backend down
)

// Error is a protocol error with its PROTOCOL.md code. Its JSON and msgpack
// forms are the "err" object of a reply.
type Error struct {
	Code int    `json:"code" msgpack:"code"`
	Msg  string `json:"msg" msgpack:"msg"`
}

func (e *Error) Error() string { return "error " + strconv.Itoa(e.Code) + ": " + e.Msg }

func badRequest(msg string) error { return &Error{Code: CodeBadRequest, Msg: msg} }
