package server

import "github.com/tickfan/tickfan/codec"

// overBudget reports whether what is queued for the client, in the outbox
// and the reactor's write buffer, is past the outbox's high-water mark.
func (c *conn) overBudget() bool {
	return c.out.over(&c.l.mk, c.t.OutboundBuffered())
}

// pauseInput stops reading the commands of a connection over its budget.
// Everything queued for a client (publications, replies, pongs) counts
// against its outbox budget: over it, the client is slow as PROTOCOL.md
// says (lag, then 4005 after --slow-timeout), and its next commands wait
// unread until it has read enough (resumeInput).
func (c *conn) pauseInput() {
	if !c.inPaused {
		c.inPaused = true
		c.l.srv.metrics.inputPaused.Inc()
	}
	if !c.slow {
		c.goSlow()
	}
	c.block() // poll looks again as the socket drains
}

// resumeInput reads a paused connection's input again once the client
// has read enough that it is back under its budget.
func (c *conn) resumeInput() {
	if c.inPaused { // the rule is not: the check stays inline in flush
		c.resumePausedInput()
	}
}

func (c *conn) resumePausedInput() {
	if !c.closing && !c.overBudget() {
		c.inPaused = false
		if c.rare != nil && c.rare.frag != nil {
			c.rare.fragSince = c.l.srv.wheel.NowNano() // its time ran only while read
		}
		c.l.srv.metrics.inputPaused.Dec()
		c.t.WakeInput()
	}
}

// holdInput accounts for the inbound bytes the connection leaves unread
// (rest, kept by the reactor, and a fragmented message being assembled):
// they count in the server's inbound budget, each message the client has
// started must be finished within --message-timeout, and a client that
// sends without reading holds at most two messages' worth. consumed is
// what this read handled: a rest after it is a message begun in it.
func (c *conn) holdInput(rest, consumed int, now int64) {
	srv := c.l.srv
	if c.state == stClosed {
		return
	}
	if c.closing { // nothing more is read: what it held is dropped
		srv.inbound.Add(-int64(c.held))
		c.held, c.begun = 0, 0
		return
	}
	held := rest
	fragmented := c.rare != nil && c.rare.frag != nil
	if fragmented {
		held += len(c.rare.frag)
	}
	if d := held - int(c.held); d != 0 {
		srv.inbound.Add(int64(d))
		c.held = int32(held)
	}
	// The oldest unfinished message: the one the rest begins (begun in
	// this read if this read handled any, else when it was first seen) and
	// the fragmented one. While the connection is paused its unread input
	// is the server's doing, not the client's: no deadline then.
	var since int64
	if c.state != stOpen {
		since = c.begun // the upgrade's start: its own timeout
	} else if rest > 0 && !c.inPaused && !c.stalled {
		since = c.begun
		if consumed > 0 || since == 0 {
			since = now
		}
	}
	if fragmented && !c.inPaused && !c.stalled && (since == 0 || c.rare.fragSince < since) {
		since = c.rare.fragSince
	}
	if since != c.begun {
		c.begun = since
		if since != 0 {
			c.armTimer(now)
		}
	}
	switch {
	case held == 0:
	case c.inPaused && held > 2*c.maxFrame():
		c.closeWith(codec.DisconnectSlowClient.WithReason("sends commands without reading the replies"))
	case srv.inbound.Load() > int64(srv.cfg.InboundBytes):
		srv.metrics.inboundRefusals.Inc()
		c.closeWith(codec.DisconnectBadRequest.WithReason("the server holds too many unfinished messages"))
		// What it sent is dropped (a closing connection reads nothing).
		srv.inbound.Add(-int64(c.held))
		c.held = 0
	}
}
