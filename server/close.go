package server

import (
	"errors"
	"unicode/utf8"

	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/server/reactor"
)

// The close codes are codec's Disconnect values (codec/disconnect.go): the
// code, its reason and whether the client should reconnect, the same value
// writing the op close, the WebSocket close frame and the metric.

// wsCloseReply answers the client's close frame with the same code, as
// RFC 6455 5.5.1 asks, and closes.
func (c *conn) wsCloseReply(payload []byte) {
	code := codec.DisconnectNormal.Code
	switch {
	case len(payload) == 1:
		code = codec.DisconnectProtocolError.Code
	case len(payload) >= 2:
		code = int(payload[0])<<8 | int(payload[1])
		if !validCloseCode(code) || !utf8.Valid(payload[2:]) {
			code = codec.DisconnectProtocolError.Code
		}
	}
	c.push(codec.Disconnect{Code: code}.AppendWSClose(nil)) // the code alone, as the client sent it
	c.closeAfterFlush()
}

// validCloseCode reports whether a peer may send code in a close frame
// (RFC 6455 7.4).
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1011:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// wsProtocolClose closes for a frame that broke RFC 6455.
func (c *conn) wsProtocolClose(err error) {
	var ce *codec.CloseError
	if errors.As(err, &ce) {
		c.wsClose(ce.Disconnect)
		return
	}
	c.wsClose(codec.DisconnectProtocolError.WithReason(err.Error()))
}

// wsClose sends a WebSocket close frame (no op close: PROTOCOL.md says
// protocol violations carry only the RFC 6455 code) and closes.
func (c *conn) wsClose(d codec.Disconnect) {
	c.l.srv.metrics.closes(d.Code).Inc()
	c.push(d.AppendWSClose(nil))
	c.closeAfterFlush()
}

// closeWith sends {"op":"close"} (and over WebSocket a close frame with the
// same code and reason) and closes.
func (c *conn) closeWith(d codec.Disconnect) {
	c.l.srv.metrics.closes(d.Code).Inc()
	c.push(d.AppendCloseFrames(nil, c.format))
	c.closeAfterFlush()
}

func (c *conn) closeAfterFlush() {
	c.closing = true
	c.markDirty()
}

// shutdown ends a closing connection as PROTOCOL.md asks. Once the
// reactor has written the last bytes it shuts the write side, so the client
// reads them and then a clean end of stream; what the client still sends
// is read and dropped (onData), and the reactor closes the connection when
// the client closes its side, or onTimer does reactor.CloseLinger after the close
// began. Closing at once with unread input would make the kernel answer
// with a reset, and the client's stack would drop the close unread.
func (c *conn) shutdown() {
	if !c.lingering {
		now := c.l.srv.wheel.NowNano()
		c.lingering = true
		c.nextPing = now + int64(reactor.CloseLinger)
		c.armTimer(now)
	}
	switch {
	case c.shut:
	case c.t.OutboundBuffered() > 0:
		c.block() // poll marks it dirty once the socket has taken the rest
	case c.t.CloseWrite() != nil:
		_ = c.t.Close()
	default:
		c.shut = true
	}
}

// drainNotice tells the client the server drains: {"op":"close","code":4007}
// (over WebSocket also a close frame, so a client library reports it), and
// closes the connection as any close: once those bytes are read or
// reactor.CloseLinger has passed.
func (c *conn) drainNotice() {
	if c.state != stOpen || c.closing {
		if c.state == stHandshake {
			c.closing = true // an upgrade not finished is not served any more
			_ = c.t.Close()
		}
		return
	}
	c.closeWith(codec.DisconnectServerDraining)
}
