package codec

import "strconv"

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
