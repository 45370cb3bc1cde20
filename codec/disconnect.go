package codec

import (
	"strconv"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// Disconnect is why the server closes a connection, as the client is told:
// Code and Reason travel in {"op":"close","code":C,"reason":".."} and, over
// WebSocket, in the close frame (PROTOCOL.md, Closing). Reconnect says
// what the client should do next: true, connect again (after a backoff,
// resuming with "since"); false, the same close will recur until the client
// changes what it sends or is granted more.
//
// Codes 4000-4999 are tickfan's and come with an op close. Codes below
// 4000 are RFC 6455's: the server sends them in a close frame alone, for a
// WebSocket protocol violation or in answer to the client's close.
//
// The Disconnect* values are every code the server sends, each with its
// default reason; WithReason gives one a more precise reason. They are
// values: copy them, never change them.
type Disconnect struct {
	Code      int
	Reason    string
	Reconnect bool
}

// The codes of PROTOCOL.md, Closing.
var (
	// DisconnectShutdown: the server shuts down.
	DisconnectShutdown = Disconnect{Code: 4000, Reason: "normal shutdown", Reconnect: true}
	// DisconnectIdle: nothing was heard from the client within the idle
	// timeout.
	DisconnectIdle = Disconnect{Code: 4001, Reason: "idle timeout", Reconnect: true}
	// DisconnectTokenExpired: the token expired and no refresh came; the
	// client reconnects with a new token.
	DisconnectTokenExpired = Disconnect{Code: 4002, Reason: "token expired", Reconnect: true}
	// DisconnectForbidden: the client is not allowed what it asked.
	DisconnectForbidden = Disconnect{Code: 4003, Reason: "forbidden"}
	// DisconnectBadRequest: broken framing, a TCP frame over the limit, a
	// message not finished in time, the server's inbound budget passed, or
	// command rate abuse.
	DisconnectBadRequest = Disconnect{Code: 4004, Reason: "bad request"}
	// DisconnectSlowClient: over the outbox budget for the slow timeout,
	// or sending on without reading; the client reconnects with "since",
	// and should read faster or subscribe to less.
	DisconnectSlowClient = Disconnect{Code: 4005, Reason: "slow client", Reconnect: true}
	// DisconnectTooManyConns: a connection limit is reached; reconnect
	// later, with backoff.
	DisconnectTooManyConns = Disconnect{Code: 4006, Reason: "too many connections", Reconnect: true}
	// DisconnectServerDraining: the server leaves service; reconnect, to
	// another node.
	DisconnectServerDraining = Disconnect{Code: 4007, Reason: "server draining", Reconnect: true}
)

// The RFC 6455 codes (section 7.4.1) the server sends in a close frame.
var (
	// DisconnectNormal answers a client's close frame that carried no code
	// (RFC 6455 5.5.1 asks the answer to echo the code when there is one).
	DisconnectNormal = Disconnect{Code: 1000, Reason: "normal closure", Reconnect: true}
	// DisconnectProtocolError: the client broke RFC 6455.
	DisconnectProtocolError = Disconnect{Code: 1002, Reason: "protocol error"}
	// DisconnectInvalidUTF8: a text message that is not UTF-8.
	DisconnectInvalidUTF8 = Disconnect{Code: 1007, Reason: "invalid UTF-8"}
	// DisconnectTooBig: a message over the frame limit.
	DisconnectTooBig = Disconnect{Code: 1009, Reason: "message too big"}
)

// disconnects lists the named values, for DisconnectOf.
var disconnects = [...]*Disconnect{
	&DisconnectShutdown, &DisconnectIdle, &DisconnectTokenExpired, &DisconnectForbidden,
	&DisconnectBadRequest, &DisconnectSlowClient, &DisconnectTooManyConns, &DisconnectServerDraining,
	&DisconnectNormal, &DisconnectProtocolError, &DisconnectInvalidUTF8, &DisconnectTooBig,
}

// DisconnectCodes returns the code of every named Disconnect, in the order
// they are declared: what the server may send (its close metric is labelled
// by them).
func DisconnectCodes() []int {
	codes := make([]int, len(disconnects))
	for i, d := range disconnects {
		codes[i] = d.Code
	}
	return codes
}

// DisconnectOf returns the named Disconnect of code, so that a client knows
// what a code it received means and whether to reconnect; ok is false for
// a code the server does not send.
func DisconnectOf(code int) (d Disconnect, ok bool) {
	for _, d := range disconnects {
		if d.Code == code {
			return *d, true
		}
	}
	return Disconnect{Code: code}, false
}

// WithReason returns d with reason in place of its default one.
func (d Disconnect) WithReason(reason string) Disconnect {
	d.Reason = reason
	return d
}

func (d Disconnect) String() string { return strconv.Itoa(d.Code) + " " + d.Reason }

// AppendClose appends the frame {"op":"close","code":C,"reason":".."} of d
// in format f, sent just before the server closes. Over WebSocket,
// AppendWSClose of the same d follows it; AppendCloseFrames writes both.
func (d Disconnect) AppendClose(dst []byte, f Format) []byte {
	e, start := startFrame(dst, f)
	e.openMap(3)
	e.key("op")
	e.str("close")
	e.key("code")
	e.int(int64(d.Code))
	e.key("reason")
	e.str(d.Reason)
	e.closeMap()
	return e.endFrame(f, start)
}

// maxCloseReason is what a close frame's 125-byte payload leaves for the
// reason after the 2-byte code.
const maxCloseReason = 123

// AppendWSClose appends a WebSocket close frame with d's code and reason;
// a reason too long for a control frame is cut at a UTF-8 boundary.
func (d Disconnect) AppendWSClose(dst []byte) []byte {
	reason := d.Reason
	if len(reason) > maxCloseReason {
		cut := maxCloseReason
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	dst = append(dst, 0x80|byte(ws.OpClose), byte(2+len(reason)), byte(d.Code>>8), byte(d.Code))
	return append(dst, reason...)
}

// AppendCloseFrames appends all that the server sends when it closes for
// d: the op close in format f and, over WebSocket, the close frame with
// the same code and reason (PROTOCOL.md, Closing, step 1).
func (d Disconnect) AppendCloseFrames(dst []byte, f Format) []byte {
	dst = d.AppendClose(dst, f)
	if f.WebSocket() {
		dst = d.AppendWSClose(dst)
	}
	return dst
}
