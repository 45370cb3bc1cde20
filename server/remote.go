package server

import (
	"errors"

	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/topic"
)

// With a remote broker (Redis) a pub and the follow of a topic new to this
// node go off the loop, and their answers come back to it later (Post).
// Replies stay in command order: a connection may have many pubs out at
// once (a producer's burst goes to Redis in one pipeline), their replies
// kept in order in replies; any other command, and a pub past maxPubsOut,
// waits (parked) with the connection's input left unread until what is
// out has been answered. A sub or pull of a topic the node does not hold
// waits the same way for its follow, then runs again.

// maxPubsOut bounds a connection's pubs handed to the broker and not yet
// answered: past it the connection's input waits.
const maxPubsOut = 1024

// asyncState is a connection's work off the loop (in connRare).
type asyncState struct {
	pubsOut   int
	following bool
	// replies are the answers of the pubs out and of the commands after
	// them, in command order; base is the ticket of replies[0].
	replies []pendingReply
	base    uint64
	// parked is the message that waits (a copy), nil when none.
	parked []byte
}

type pendingReply struct {
	frame []byte
	done  bool
}

// busyFor reports whether the command must wait for what is out.
func (a *asyncState) busyFor(cmd *codec.Command, err error) bool {
	if a.following {
		return true
	}
	if err != nil || cmd.Op != "pub" {
		return a.pubsOut > 0
	}
	return a.pubsOut >= maxPubsOut
}

// reply queues a reply after the answers still out, in order.
func (c *conn) reply(frame []byte) {
	if c.rare != nil && len(c.rare.async.replies) > 0 {
		c.rare.async.replies = append(c.rare.async.replies, pendingReply{frame: frame, done: true})
		return
	}
	c.push(frame)
}

// park keeps a message that must wait, and stops reading the connection's
// input until it can run (unpark).
func (c *conn) park(body []byte) {
	c.rareState().async.parked = append([]byte(nil), body...)
	c.stalled = true
}

// pubRemote hands a pub to the remote broker; its reply comes in order
// when the broker answers.
func (c *conn) pubRemote(r topic.Remote, cmd *codec.Command, req topic.PublishRequest) {
	a := &c.rareState().async
	a.pubsOut++
	ticket := a.base + uint64(len(a.replies))
	a.replies = append(a.replies, pendingReply{})
	id, hasID, l, format := cmd.ID, cmd.HasID, c.l, c.format
	srv := c.l.srv
	r.PublishAsync(req, func(pos topic.Position, err error) {
		var frame []byte
		if err != nil {
			code := publishErrCode(err)
			srv.metrics.errors(code).Inc()
			frame = codec.AppendError(nil, format, id, hasID, code, err.Error())
		} else {
			srv.metrics.publications.Inc()
			frame = codec.AppendPubReply(nil, format, id, hasID, pos)
		}
		l.Post(func() { c.pubAnswered(ticket, frame) })
	})
}

// pubAnswered files a pub's reply and sends every reply now in order.
func (c *conn) pubAnswered(ticket uint64, frame []byte) {
	a := &c.rare.async
	a.pubsOut--
	a.replies[ticket-a.base] = pendingReply{frame: frame, done: true}
	n := 0
	for n < len(a.replies) && a.replies[n].done {
		if c.state != stClosed && !c.closing {
			c.push(a.replies[n].frame)
		}
		n++
	}
	if n > 0 {
		rest := copy(a.replies, a.replies[n:])
		clear(a.replies[rest:])
		a.replies = a.replies[:rest]
		a.base += uint64(n)
		if rest == 0 && cap(a.replies) > 64 {
			a.replies = nil
		}
	}
	c.unpark()
}

// follow has the broker follow the named topics for a sub or pull, which
// waits parked and runs again once they are held.
func (c *conn) follow(r topic.Remote, names []string) {
	a := &c.rareState().async
	a.following = true
	c.stalled = true
	l := c.l
	r.Follow(names, func(err error) {
		l.Post(func() { c.followed(err) })
	})
}

func (c *conn) followed(err error) {
	a := &c.rare.async
	a.following = false
	if err != nil && a.parked != nil && c.state == stOpen && !c.closing {
		cmd := &c.l.cmd
		_ = codec.Decode(c.format, a.parked, cmd)
		code := codec.CodeUnavailable
		if errors.Is(err, topic.ErrTooManyTopics) {
			code = codec.CodeTooMany
		}
		c.replyErr(cmd, code, err.Error())
		a.parked = nil
	}
	c.unpark()
}

// unpark runs the parked message once nothing it waits for is out, and
// has the engine hand the connection its unread input again.
func (c *conn) unpark() {
	defer c.l.flush()
	if !c.stalled || c.state != stOpen || c.closing {
		return
	}
	a := &c.rare.async
	if body := a.parked; body != nil {
		cmd := &c.l.cmd
		err := codec.Decode(c.format, body, cmd)
		if a.busyFor(cmd, err) {
			return
		}
		a.parked = nil
		c.stalled = false
		c.run(cmd, err, body)
		if c.stalled { // it waits again (a follow, or more pubs out)
			return
		}
	} else if a.following {
		return
	}
	c.stalled = false
	c.t.WakeInput()
}

// notHeld returns the names the engine does not hold (Held mode).
func (c *conn) notHeld(names []string) []string {
	var out []string
	for _, n := range names {
		if _, ok := c.l.srv.engine.Held(n); !ok {
			out = append(out, n)
		}
	}
	return out
}
