package server

import (
	"errors"
	"fmt"
	"time"

	"github.com/tickfan/tickfan/auth"
	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/topic"
)

// handle decodes and executes one client message. Replies are queued in
// order, each before any publication its command causes.
//
// A pub that the connection's token grants never counts against
// --cmd-rate (producers are trusted and fast), only against --pub-rate
// when the operator set one; everything else is a command of the rate
// limit. The message is decoded once either way.
func (c *conn) handle(body []byte) {
	cmd := &c.l.cmd
	if c.claims != nil && len(c.claims.Pub) > 0 && !c.authPending {
		err := codec.Decode(c.format, body, cmd)
		if err == nil && cmd.Op == "pub" && auth.CanPublish(c.claims, cmd.Topic) {
			if rate := c.l.srv.cfg.PubRate; rate > 0 && !c.rareState().pubs.take(rate, c.l.srv.wheel.NowNano()) {
				c.replyErr(cmd, codec.CodeTooMany, fmt.Sprintf("too many publications: at most %d per second (--pub-rate)", rate))
				return
			}
			c.run(cmd, nil, body)
			return
		}
		if !c.takeCommand() {
			c.tooMany(cmd)
			return
		}
		c.run(cmd, err, body)
		return
	}
	if !c.takeCommand() {
		_ = codec.Decode(c.format, body, cmd) // for the id, when there is one
		c.tooMany(cmd)
		return
	}
	c.exec(body)
}

// tooMany answers a command over the rate with 429, unless takeCommand
// closed the connection for it.
func (c *conn) tooMany(cmd *codec.Command) {
	if !c.closing {
		c.replyErr(cmd, codec.CodeTooMany, fmt.Sprintf("too many commands: at most %d per second", c.l.srv.cfg.CmdRate))
	}
}

// takeCommand spends one of the connection's --cmd-rate tokens (commands
// and WebSocket pings alike). Over the rate it reports false; a client
// that sends a second full burst while refused is closed with 4004.
func (c *conn) takeCommand() bool {
	rate := c.l.srv.cfg.CmdRate
	if c.cmds.take(rate, c.l.srv.wheel.NowNano()) {
		return true
	}
	if int(c.cmds.refused) > rate {
		c.closeWith(codec.DisconnectBadRequest.WithReason("command rate abuse"))
	}
	return false
}

// exec decodes and executes one message that passed the rate limit.
func (c *conn) exec(body []byte) {
	cmd := &c.l.cmd
	if c.authPending {
		// Commands are answered in order: wait for the token check.
		r := c.rareState()
		if len(r.waiting) >= maxWaiting {
			c.closeWith(codec.DisconnectBadRequest.WithReason("too many commands while a token is checked"))
			return
		}
		r.waiting = append(r.waiting, append([]byte(nil), body...))
		return
	}
	c.run(cmd, codec.Decode(c.format, body, cmd), body)
}

// run executes a decoded command, or answers 400 when decoding failed.
// body is the message, kept by a command that must wait (remote.go).
func (c *conn) run(cmd *codec.Command, err error, body []byte) {
	if c.rare != nil && c.l.srv.remote != nil && c.rare.async.busyFor(cmd, err) {
		c.park(body)
		return
	}
	c.l.msg = body
	if err != nil {
		msg := err.Error()
		var ce *codec.Error
		if errors.As(err, &ce) {
			msg = ce.Msg
		}
		c.replyErr(cmd, codec.CodeBadRequest, msg)
		return
	}
	c.l.srv.metrics.commands(cmd.Op).Inc()
	switch cmd.Op {
	case "sub":
		c.cmdSub(cmd)
	case "unsub":
		c.cmdUnsub(cmd)
	case "pull":
		c.cmdPull(cmd)
	case "pub":
		c.cmdPub(cmd)
	case "ping":
		c.push(codec.AppendEmptyReply(nil, c.format, cmd.ID, cmd.HasID))
	case "auth", "refresh":
		c.cmdAuth(cmd)
	case "":
		c.replyErr(cmd, codec.CodeBadRequest, "op missing")
	default:
		c.replyErr(cmd, codec.CodeUnknownOp, fmt.Sprintf("unknown op %q", cmd.Op))
	}
}

// replyErr queues an error reply, with the message's id when it had a
// valid one (Decode keeps it even when another field is wrong).
func (c *conn) replyErr(cmd *codec.Command, code int, msg string) {
	c.l.srv.metrics.errors(code).Inc()
	c.reply(codec.AppendError(nil, c.format, cmd.ID, cmd.HasID, code, msg))
}

// canRead returns 0 when the connection may subscribe to or pull the topic,
// or the error code that refuses it.
func (c *conn) canRead(name string) (int, string) {
	switch {
	case auth.CanRead(c.claims, name) && (c.claims != nil || !c.l.srv.cfg.RequireAuth):
		return 0, ""
	case c.claims == nil:
		return codec.CodeUnauthorized, "topic " + name + " needs authentication"
	}
	return codec.CodeForbidden, "token does not grant topic " + name
}

// maxWaiting bounds the messages a client may send while its token is
// checked off the loop.
const maxWaiting = 64

// cmdAuth checks a token (auth and refresh alike). A fast check (HS256)
// runs here; a slow one (RS256, ES256) runs off the loop, and the
// connection's later messages wait for its answer so replies stay in order.
func (c *conn) cmdAuth(cmd *codec.Command) {
	v := c.l.srv.verifier
	switch {
	case v == nil:
		c.replyErr(cmd, codec.CodeUnauthorized, "token authentication is not configured on this server")
		return
	case cmd.Token == "":
		c.replyErr(cmd, codec.CodeBadRequest, cmd.Op+" needs token")
		return
	}
	id, hasID := cmd.ID, cmd.HasID
	if !v.Slow() {
		claims, err := v.Verify(cmd.Token, time.Unix(0, c.l.srv.wheel.NowNano()))
		c.applyAuth(id, hasID, claims, err)
		return
	}
	c.authPending = true
	token, l := cmd.Token, c.l
	go func() {
		claims, err := v.Verify(token, time.Now())
		l.Post(func() {
			c.authPending = false
			if c.state != stOpen {
				return
			}
			c.applyAuth(id, hasID, claims, err)
			r := c.rareState()
			waiting := r.waiting
			r.waiting = nil
			for i, body := range waiting {
				if c.authPending || c.closing { // another slow auth: keep order
					r.waiting = append(waiting[i:len(waiting):len(waiting)], r.waiting...)
					break
				}
				c.exec(body)
			}
			c.l.flush()
		})
	}()
}

// applyAuth answers an auth or refresh with the token check's outcome. A
// refused token leaves the connection as it was. A token of another user
// than the connection's is refused (403): a new user needs a new connection.
func (c *conn) applyAuth(id uint64, hasID bool, claims auth.Claims, err error) {
	m := c.l.srv.metrics
	switch {
	case err != nil:
		m.errors(codec.CodeUnauthorized).Inc()
		c.push(codec.AppendError(nil, c.format, id, hasID, codec.CodeUnauthorized, err.Error()))
		return
	case c.claims != nil && claims.Sub != c.claims.Sub:
		m.errors(codec.CodeForbidden).Inc()
		c.push(codec.AppendError(nil, c.format, id, hasID, codec.CodeForbidden, "the token is for another user than this connection's"))
		return
	}
	c.claims = &claims
	c.tokenExp = claims.Exp.UnixNano()
	c.armTimer(c.l.srv.wheel.NowNano())
	c.push(codec.AppendAuthReply(nil, c.format, id, hasID, claims.Sub, claims.Exp.Unix()))
}

// checkTopic validates a topic name and the right to read it.
func (c *conn) checkTopic(cmd *codec.Command, name string) bool {
	if err := topic.ValidName(name); err != nil {
		c.replyErr(cmd, codec.CodeBadRequest, err.Error())
		return false
	}
	if code, msg := c.canRead(name); code != 0 {
		c.replyErr(cmd, code, msg)
		return false
	}
	return true
}
