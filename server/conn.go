package server

import (
	"net/netip"

	"github.com/gobwas/ws"
	"github.com/tickfan/tickfan/auth"
	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/server/reactor"
	"github.com/tickfan/tickfan/wheel"
)

type connState uint8

const (
	stHandshake connState = iota // WebSocket: waiting for the upgrade request
	stOpen
	stClosed
)

// conn is one client connection. It is owned by its loop: every method runs
// on the loop's goroutine.
type conn struct {
	t    reactor.Transport
	l    *loop
	prev *conn // the loop's list of open connections
	next *conn

	// subs are the topics held, in a slice: a few per connection is the
	// rule, and a slice costs a fraction of a map's memory.
	subs []*subscription

	// out holds whole frames, shared with other connections (a
	// publication's frame) or owned (a reply), until the loop hands them to
	// the socket. It is written only when the reactor's write buffer is
	// empty, so the two together stay near the high-water mark.
	out outbox

	// claims of the client's token, nil while anonymous; tokenExp is its
	// expiry on the wheel's clock. While a slow token check runs off the
	// loop (authPending), later messages wait in order in waiting.
	claims   *auth.Claims
	tokenExp int64

	ip   netip.Addr
	cmds cmdBucket
	rare *connRare // what few connections need, allocated on first use

	// Deadlines, on the wheel's coarse clock (unix ns): one wheel timer
	// stands for the nearest of them. A closing connection sends no ping,
	// so nextPing is then the deadline of its close.
	timer wheel.Timer
	// begun: while the WebSocket upgrade runs, when the connection
	// opened; once open, when the oldest message the client has begun and
	// not finished began (0: none): it has --message-timeout to finish it.
	begun     int64
	lastSeen  int64
	nextPing  int64
	slowSince int64

	paused int32 // subscriptions not pushed live (lagged or catching up)
	// held is the inbound bytes the connection holds unhandled (in the
	// reactor's buffer and a fragmented message), counted in the
	// server's inbound budget.
	held     int32
	rejected bool // refused by the limits: told 4006 once the WebSocket upgrade is done

	// The small fields together, so that conn stays in a small size class.
	kind    reactor.Kind
	state   connState
	format  codec.Format
	dirty   bool // in l.dirty: write out at the end of this loop turn
	blocked bool // in l.blocked: out waits for the socket to drain
	closing bool // close once out is written
	// lingering: the close has begun (nextPing is now its deadline);
	// shut: the write side is shut and input is read and dropped until
	// the client closes its side or the deadline passes.
	lingering bool
	shut      bool
	// inPaused: input is left unread while the outbox is over its budget
	// (backpressure); flush wakes it once the client has read enough.
	inPaused bool
	// pongQueued: a pong waits in out; a second ping gets none of its own.
	pongQueued  bool
	authPending bool
	// stalled: a command waits for work off the loop (remote.go), and
	// the input after it is left unread until it has run.
	stalled  bool
	admitted bool // counted by the server's per-IP limits
	slow     bool // over the high-water mark, not yet back under the low one
}

// connRare is the state of a connection that few connections need: a
// fragmented message being assembled, commands waiting for a slow token
// check. It keeps conn small (an idle connection is a memory budget).
type connRare struct {
	frag   []byte // a fragmented WebSocket message being assembled
	fragOp ws.OpCode
	// fragSince is when the fragmented message began: it must be
	// finished within --message-timeout.
	fragSince int64
	waiting   [][]byte  // commands that came while a token was checked
	pubs      cmdBucket // --pub-rate of a producer's pubs
	async     asyncState
}

func (c *conn) rareState() *connRare {
	if c.rare == nil {
		c.rare = &connRare{}
	}
	return c.rare
}

func newConn(t reactor.Transport, l *loop, kind reactor.Kind) *conn {
	c := &conn{t: t, l: l, kind: kind, format: codec.WSJSON}
	if kind == reactor.TCP {
		c.state, c.format = stOpen, codec.TCPMsgpack
	}
	c.timer.InitFunc(connTimerFired)
	l.link(c)
	now := l.srv.wheel.NowNano()
	c.lastSeen = now
	if c.state == stHandshake {
		c.begun = now
	}
	c.nextPing = now + int64(l.srv.cfg.Heartbeat)
	c.armTimer(now)
	return c
}

// Data implements reactor.Session: it hands bytes read from the socket to
// the connection, writes what they caused and returns how many bytes were
// used. Loop goroutine only.
func (c *conn) Data(buf []byte) int {
	c.l.stageAt(stRead)
	now := c.l.srv.wheel.NowNano()
	if len(buf) > 0 {
		c.lastSeen = now // any inbound byte is life
	}
	n := c.onData(buf)
	c.holdInput(len(buf)-n, n, now)
	c.l.flush()
	return n
}

// Unread implements reactor.Session: the input held for a paused
// connection is counted and bounded as Data counts what it leaves.
func (c *conn) Unread(n int) {
	c.holdInput(n, 0, c.l.srv.wheel.NowNano())
	c.l.flush()
}

// InputPaused implements reactor.Session.
func (c *conn) InputPaused() bool { return c.inPaused || c.stalled }

// Closed implements reactor.Session.
func (c *conn) Closed() { c.closed() }

// push queues a reply or control frame.
func (c *conn) push(frame []byte) { c.queue(frame, nil, 0) }

// queue appends a whole frame to the outbox; sub and seq are set for a
// publication's frame.
func (c *conn) queue(frame []byte, s *subscription, seq uint64) {
	i := c.out.push(outFrame{b: frame, sub: s, seq: seq})
	if s == nil {
		c.markReplied()
		return
	}
	if s.conflate {
		s.pending = i
	}
	c.markDirty()
}

// markDirty has the loop write the connection at the end of this turn,
// among the first: it has publications to deliver.
func (c *conn) markDirty() {
	if !c.dirty {
		c.dirty = true
		c.l.dirty = append(c.l.dirty, c)
	}
}

// markReplied has the loop write the connection at the end of this turn,
// after those with publications: a write to an idle client costs the
// loop the client's wake-up (several microseconds on loopback), and a
// publication's latency counts more than its pub's acknowledgement.
func (c *conn) markReplied() {
	if !c.dirty {
		c.dirty = true
		c.l.replied = append(c.l.replied, c)
	}
}

// block puts the connection on the loop's poll list.
func (c *conn) block() {
	if !c.blocked {
		c.blocked = true
		c.l.block(c)
	}
}

// closed releases the connection's subscriptions and deadlines once the
// reactor has closed it.
func (c *conn) closed() {
	if c.state == stClosed {
		return
	}
	if c.state == stOpen {
		c.l.srv.metrics.conns(c.kind).Dec()
	}
	if c.slow {
		c.l.srv.metrics.slowClients.Dec()
	}
	if c.inPaused {
		c.inPaused = false
		c.l.srv.metrics.inputPaused.Dec()
	}
	c.state = stClosed
	c.l.unlink(c)
	if c.held != 0 {
		c.l.srv.inbound.Add(-int64(c.held))
		c.held = 0
	}
	if c.admitted {
		c.l.srv.ipLimits.release(c.ip)
	}
	c.l.srv.wheel.Stop(&c.timer)
	c.out.reset(c.l)
	for len(c.subs) > 0 {
		c.dropSub(c.subs[len(c.subs)-1])
	}
	c.rare = nil
}
