package server

import (
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/server/reactor"
)

// onData consumes complete frames from buf and returns how many bytes it
// used; the rest is kept by the reactor until more arrives.
func (c *conn) onData(buf []byte) int {
	off := 0
	for off < len(buf) {
		if c.closing || c.state == stClosed {
			return len(buf) // nothing more is read from a closing connection
		}
		if c.stalled {
			break
		}
		if c.state == stOpen && c.overBudget() {
			c.pauseInput()
			break
		}
		var n int
		switch {
		case c.kind == reactor.TCP:
			n = c.readTCP(buf[off:])
		case c.state == stHandshake:
			n = c.readHandshake(buf[off:])
		default:
			n = c.readWS(buf[off:])
		}
		if n == 0 {
			break
		}
		off += n
	}
	return off
}

func (c *conn) readHandshake(buf []byte) int {
	opts := codec.HandshakeOptions{Path: c.l.srv.cfg.WSPath}
	if c.l.srv.origins != nil {
		opts.AllowOrigin = c.l.srv.allowOrigin
	}
	r := codec.HandshakeWith(buf, opts)
	if r.N == 0 && r.Err == nil {
		return 0
	}
	if r.Err != nil {
		c.l.srv.metrics.handshakeFailures.Inc()
		c.push(r.Response)
		c.closeAfterFlush()
		return len(buf)
	}
	c.push(r.Response)
	if c.upgraded(r.Format); c.closing {
		return len(buf)
	}
	return r.N
}

// upgraded opens a WebSocket connection whose upgrade is done: it is
// served in format f, or told 4006 when the limits refused it.
func (c *conn) upgraded(f codec.Format) {
	c.format = f
	c.state = stOpen
	c.begun = 0 // from here on: the oldest unfinished message
	c.l.srv.metrics.conns(reactor.WebSocket).Inc()
	if c.rejected {
		c.closeWith(codec.DisconnectTooManyConns)
		return
	}
	c.armTimer(c.l.srv.wheel.NowNano())
}

func (c *conn) readTCP(buf []byte) int {
	body, n, err := codec.ReadTCPFrame(buf, c.maxFrame())
	if err != nil {
		c.closeWith(codec.DisconnectBadRequest.WithReason(err.Error()))
		return len(buf)
	}
	if n > 0 {
		c.handle(body)
	}
	return n
}

func (c *conn) readWS(buf []byte) int {
	maxFrame := c.maxFrame()
	fr, n, err := codec.ReadWSFrame(buf, maxFrame)
	if err != nil {
		c.wsProtocolClose(err)
		return len(buf)
	}
	if n == 0 {
		return 0
	}
	switch fr.Op {
	case ws.OpText, ws.OpBinary:
		if c.rare != nil && c.rare.frag != nil {
			c.wsClose(codec.DisconnectProtocolError.WithReason("new message inside a fragmented one"))
			return len(buf)
		}
		if !fr.Fin {
			r := c.rareState()
			r.frag = append(make([]byte, 0, len(fr.Payload)), fr.Payload...)
			r.fragOp = fr.Op
			r.fragSince = c.l.srv.wheel.NowNano()
			return n
		}
		c.message(fr.Op, fr.Payload)
	case ws.OpContinuation:
		if c.rare == nil || c.rare.frag == nil {
			c.wsClose(codec.DisconnectProtocolError.WithReason("continuation without a start"))
			return len(buf)
		}
		r := c.rare
		if len(r.frag)+len(fr.Payload) > maxFrame {
			c.wsClose(codec.DisconnectTooBig)
			return len(buf)
		}
		r.frag = append(r.frag, fr.Payload...)
		if fr.Fin {
			msg := r.frag
			r.frag = nil
			c.message(r.fragOp, msg)
		}
	case ws.OpPing:
		c.ping(fr.Payload)
	case ws.OpPong:
	case ws.OpClose:
		c.wsCloseReply(fr.Payload)
		return len(buf)
	}
	return n
}

// message handles one whole WebSocket data message.
func (c *conn) message(op ws.OpCode, payload []byte) {
	if op == ws.OpText && !utf8.Valid(payload) {
		c.wsClose(codec.DisconnectInvalidUTF8.WithReason("text message is not UTF-8"))
		return
	}
	c.handle(payload)
}

// ping answers a WebSocket ping. A ping is a command of the rate limit
// (a client over it gets no pong, and one that keeps on is closed as any
// command abuser), and at most one pong waits in the outbox.
func (c *conn) ping(payload []byte) {
	if !c.takeCommand() {
		return
	}
	if !c.pongQueued {
		c.pongQueued = true
		c.push(codec.AppendWSFrame(nil, ws.OpPong, payload))
	}
}

// Upgraded implements reactor.MessageSession.
func (c *conn) Upgraded(f codec.Format) {
	c.upgraded(f)
	c.l.flush()
}

// Message implements reactor.MessageSession: the std engine's whole
// WebSocket messages and control frames.
func (c *conn) Message(op ws.OpCode, payload []byte) bool {
	if c.state == stClosed {
		return true
	}
	c.lastSeen = c.l.srv.wheel.NowNano()
	switch {
	case c.closing: // the close has begun: input is dropped
	case op == ws.OpPing:
		c.ping(payload)
	case op == ws.OpPong:
	case op == ws.OpClose:
		c.wsCloseReply(payload)
	case c.overBudget(): // as onData: wait, unread, for the client to read
		c.pauseInput()
		c.l.flush()
		return false
	default:
		c.message(op, payload)
	}
	c.l.flush()
	return true
}

// MaxMessage implements reactor.MessageSession.
func (c *conn) MaxMessage() int { return c.maxFrame() }

// MessageTimedOut implements reactor.MessageSession.
func (c *conn) MessageTimedOut() {
	if c.state != stClosed && !c.closing {
		c.closeWith(codec.DisconnectBadRequest.WithReason("a message was not finished within the message timeout"))
		c.l.flush()
	}
}

// maxFrame is the largest message the connection may send: anonymous
// commands are small, so a connection without a token gets the smaller
// --anon-max-frame.
func (c *conn) maxFrame() int {
	if c.claims == nil {
		return c.l.srv.cfg.AnonMaxFrame
	}
	return c.l.srv.cfg.MaxFrame
}
