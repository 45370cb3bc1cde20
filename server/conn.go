package server

import (
	"errors"
	"net/netip"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/gobwas/ws"

	"github.com/tickfan/tickfan/auth"
	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/server/reactor"
	"github.com/tickfan/tickfan/topic"
	"github.com/tickfan/tickfan/wheel"
)

type connState uint8

const (
	stHandshake connState = iota // WebSocket: waiting for the upgrade request
	stOpen
	stClosed
)

// maxIovecs is the most buffers one writev may carry (Linux IOV_MAX).
const maxIovecs = 1024

// keptOutboxCap is the outbox capacity a connection keeps between writes;
// a larger one is given back so an idle connection stays small.
const keptOutboxCap = 64

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
	held   int32
	reject uint16 // a close code to send once the WebSocket upgrade is done

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
	admitted    bool // counted by the server's per-IP limits
	slow        bool // over the high-water mark, not yet back under the low one
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
}

func (c *conn) rareState() *connRare {
	if c.rare == nil {
		c.rare = &connRare{}
	}
	return c.rare
}

// subscription is one connection's hold on one topic.
type subscription struct {
	c     *conn
	topic string
	epoch string
	// last is the last seq queued for the client (or held by it); written
	// the last seq handed to the socket, which the client will hold.
	last     uint64
	written  uint64
	idx      int  // position in the loop's loopTopic.subs
	pending  int  // conflated topic: index in out of its unsent frame, or -1
	conflate bool // latest value wins: never lags, never resumes
	// paused: not pushed live. It is set by lag (or a gap) and cleared once
	// the history chunks sent as the outbox drains reach the live seq.
	paused bool
}

func (c *conn) newSub(name string, cu topic.Catchup) *subscription {
	s := &subscription{c: c, topic: name, epoch: cu.Pos.Epoch, last: cu.Pos.Seq, written: cu.Pos.Seq,
		pending: -1, conflate: c.l.srv.engine.Conflated(name)}
	if len(cu.Backlog) > 0 {
		s.written = cu.Backlog[0].Seq - 1 // the client holds nothing of the backlog yet
	}
	return s
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

// connTimerFired hands the connection whose timer fired to its loop. The
// wheel's goroutine calls it; the timer is the conn's timer field, so the
// conn is found from it without a closure per connection.
func connTimerFired(t *wheel.Timer) {
	c := (*conn)(unsafe.Add(unsafe.Pointer(t), -int(unsafe.Offsetof(conn{}.timer))))
	c.l.expire(c)
}

// onData consumes complete frames from buf and returns how many bytes it
// used; the rest is kept by the reactor until more arrives.
func (c *conn) onData(buf []byte) int {
	off := 0
	for off < len(buf) {
		if c.closing || c.state == stClosed {
			return len(buf) // nothing more is read from a closing connection
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
	if c.reject != 0 {
		c.closeWith(int(c.reject), "too many connections")
		return
	}
	c.armTimer(c.l.srv.wheel.NowNano())
}

func (c *conn) readTCP(buf []byte) int {
	body, n, err := codec.ReadTCPFrame(buf, c.maxFrame())
	if err != nil {
		c.closeWith(CloseBadRequest, err.Error())
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
			c.wsClose(codec.CloseProtocolError, "new message inside a fragmented one")
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
			c.wsClose(codec.CloseProtocolError, "continuation without a start")
			return len(buf)
		}
		r := c.rare
		if len(r.frag)+len(fr.Payload) > maxFrame {
			c.wsClose(codec.CloseTooBig, "message too big")
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

// maxFrame is the largest message the connection may send: anonymous
// commands are small, so a connection without a token gets the smaller
// --anon-max-frame.
func (c *conn) maxFrame() int {
	if c.claims == nil {
		return c.l.srv.cfg.AnonMaxFrame
	}
	return c.l.srv.cfg.MaxFrame
}

// overBudget reports whether what is queued for the client, in the outbox
// and the reactor's write buffer, is past the outbox's high-water mark.
func (c *conn) overBudget() bool {
	cfg := &c.l.srv.cfg
	return c.out.bytes+c.t.OutboundBuffered() > cfg.OutboxBytes || len(c.out.frames) > cfg.OutboxMsgs
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
	if c.inPaused && !c.closing && !c.overBudget() {
		c.inPaused = false
		if c.rare != nil && c.rare.frag != nil {
			c.rare.fragSince = c.l.srv.wheel.NowNano() // its time ran only while read
		}
		c.l.srv.metrics.inputPaused.Dec()
		c.t.WakeInput()
	}
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
	} else if rest > 0 && !c.inPaused {
		since = c.begun
		if consumed > 0 || since == 0 {
			since = now
		}
	}
	if fragmented && !c.inPaused && (since == 0 || c.rare.fragSince < since) {
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
		c.closeWith(CloseSlowClient, "sends commands without reading the replies")
	case srv.inbound.Load() > int64(srv.cfg.InboundBytes):
		srv.metrics.inboundRefusals.Inc()
		c.closeWith(CloseBadRequest, "the server holds too many unfinished messages")
		// What it sent is dropped (a closing connection reads nothing).
		srv.inbound.Add(-int64(c.held))
		c.held = 0
	}
}

// message handles one whole WebSocket data message.
func (c *conn) message(op ws.OpCode, payload []byte) {
	if op == ws.OpText && !utf8.Valid(payload) {
		c.wsClose(codec.CloseInvalidUTF8, "text message is not UTF-8")
		return
	}
	c.handle(payload)
}

// wsCloseReply answers the client's close frame with the same code, as
// RFC 6455 5.5.1 asks, and closes.
func (c *conn) wsCloseReply(payload []byte) {
	code := codec.CloseNormal
	switch {
	case len(payload) == 1:
		code = codec.CloseProtocolError
	case len(payload) >= 2:
		code = int(payload[0])<<8 | int(payload[1])
		if !validCloseCode(code) || !utf8.Valid(payload[2:]) {
			code = codec.CloseProtocolError
		}
	}
	c.push(codec.AppendWSClose(nil, code, ""))
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
		c.wsClose(ce.Code, ce.Reason)
		return
	}
	c.wsClose(codec.CloseProtocolError, err.Error())
}

// wsClose sends a WebSocket close frame (no op close: PROTOCOL.md says
// protocol violations carry only the RFC 6455 code) and closes.
func (c *conn) wsClose(code int, reason string) {
	c.l.srv.metrics.closes(code).Inc()
	c.push(codec.AppendWSClose(nil, code, reason))
	c.closeAfterFlush()
}

// closeWith sends {"op":"close"} (and over WebSocket a close frame with the
// same code) and closes.
func (c *conn) closeWith(code int, reason string) {
	c.l.srv.metrics.closes(code).Inc()
	c.push(codec.AppendClose(nil, c.format, code, reason))
	if c.kind == reactor.WebSocket {
		c.push(codec.AppendWSClose(nil, code, reason))
	}
	c.closeAfterFlush()
}

func (c *conn) closeAfterFlush() {
	c.closing = true
	c.markDirty()
}

// push queues a reply or control frame.
func (c *conn) push(frame []byte) { c.queue(frame, nil, 0) }

// queue appends a whole frame to the outbox; sub and seq are set for a
// publication's frame.
func (c *conn) queue(frame []byte, s *subscription, seq uint64) {
	i := c.out.push(outFrame{b: frame, sub: s, seq: seq})
	if s != nil && s.conflate {
		s.pending = i
	}
	c.markDirty()
}

func (c *conn) markDirty() {
	if !c.dirty {
		c.dirty = true
		c.l.dirty = append(c.l.dirty, c)
	}
}

// deliver queues a live publication for subscription s and reports whether
// it was queued. A publication the connection already has (it came in the
// catch-up of its sub) is skipped; a gap is closed from history, or
// reported with reset, before anything after it is sent. A conflated topic
// keeps only its newest unsent publication.
func (c *conn) deliver(s *subscription, p *topic.Publication) bool {
	if c.closing || s.paused || p.Epoch == s.epoch && p.Seq <= s.last {
		return false
	}
	if p.Epoch != s.epoch || p.Seq != s.last+1 && !s.conflate {
		c.pause(s) // a gap: continue from history, as after lag
		c.resumeChunk(s, c.l.srv.cfg.OutboxBytes/2)
		return true
	}
	s.last = p.Seq
	frame := c.l.frame(p, c.format)
	if s.pending >= 0 {
		c.out.replace(s.pending, frame, p.Seq)
		c.l.conflated++
		return true
	}
	c.queue(frame, s, p.Seq)
	return true
}

func (c *conn) pause(s *subscription) {
	if !s.paused {
		s.paused = true
		c.paused++
	}
}

// resumeChunk continues a paused subscription from what it was last given
// (s.last): the next publications from history, at most budget bytes of
// them, or reset and the snapshot when the range is gone. Once it reaches
// the topic's current seq the subscription is live again. It returns the
// bytes queued.
func (c *conn) resumeChunk(s *subscription, budget int) int {
	cu := c.l.srv.engine.Resume(s.topic, topic.Position{Epoch: s.epoch, Seq: s.last})
	s.epoch = cu.Pos.Epoch
	queued := 0
	c.queueReset(s, cu)
	for i, p := range cu.Backlog {
		if queued >= budget && i > 0 {
			s.last = cu.Backlog[i-1].Seq // the rest comes with the next chunk
			return queued
		}
		f := codec.Frame(p, c.format)
		c.queue(f, s, p.Seq)
		queued += len(f)
	}
	s.last = cu.Pos.Seq
	s.paused = false
	c.paused--
	c.l.srv.metrics.resumes.Inc()
	return queued
}

// queueReset queues the reset the recovery rules asked for, if any.
func (c *conn) queueReset(s *subscription, cu topic.Catchup) {
	if cu.Reset {
		c.l.srv.metrics.resets.Inc()
		c.push(codec.AppendReset(nil, c.format, s.topic, cu.Pos.Epoch, cu.ResetSeq))
	}
}

// sendCatchup queues what the recovery rules asked for: reset, then the backlog.
func (c *conn) sendCatchup(s *subscription, cu topic.Catchup) {
	c.queueReset(s, cu)
	for _, p := range cu.Backlog {
		c.queue(codec.Frame(p, c.format), s, p.Seq)
	}
}

// flush hands the outbox to the socket, unless the socket still holds
// earlier bytes: then the outbox waits and the marks are checked. A
// connection that waits for its socket to drain (with frames queued, or
// topics to resume) is polled by the loop. It returns the bytes handed over.
func (c *conn) flush() int {
	c.dirty = false
	if c.state == stClosed {
		c.out.reset()
		return 0
	}
	if buffered := c.t.OutboundBuffered(); buffered > 0 && !c.closing {
		c.checkMarks(buffered)
		if len(c.out.frames) > 0 || c.paused > 0 || c.inPaused {
			c.block()
		}
		return 0
	}
	n := c.writeOut()
	if c.state == stClosed {
		return n
	}
	if c.subs == nil && len(c.out.frames) == 0 {
		c.out.frames = nil // nothing is pushed to it: keep no room
	}
	if c.closing {
		c.shutdown()
		return n
	}
	if c.slow || c.paused > 0 || n > c.l.srv.cfg.OutboxBytes/4 {
		buffered := c.t.OutboundBuffered()
		c.checkMarks(buffered)
		if buffered > 0 && (c.paused > 0 || c.inPaused) {
			c.block()
		}
	}
	c.resumeInput()
	return n
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

// block puts the connection on the loop's poll list.
func (c *conn) block() {
	if !c.blocked {
		c.blocked = true
		c.l.block(c)
	}
}

// coalesceMax is the largest outbox written as one buffer: its frames are
// copied together and written with one write, which costs less than a
// writev of many small frames (and x/sys allocates a writev's vector).
const coalesceMax = 256 << 10

// writeOut writes the whole outbox: one frame as it is, up to coalesceMax
// bytes copied into one buffer, more with writev, at most maxIovecs frames
// at a time.
func (c *conn) writeOut() int {
	frames := c.out.frames
	if len(frames) == 0 {
		return 0
	}
	for i := range frames {
		if f := &frames[i]; f.sub != nil {
			f.sub.written = f.seq
			f.sub.pending = -1
		}
	}
	total := c.out.bytes
	var err error
	switch {
	case len(frames) == 1:
		_, err = c.t.Write(frames[0].b)
	case total <= coalesceMax:
		buf := c.l.wbuf[:0]
		for i := range frames {
			buf = append(buf, frames[i].b...)
		}
		c.l.wbuf = buf
		_, err = c.t.Write(buf)
	default:
		for off := 0; off < len(frames) && err == nil && c.state != stClosed; off += maxIovecs {
			iov := c.l.iov[:0]
			for i := off; i < min(off+maxIovecs, len(frames)); i++ {
				iov = append(iov, frames[i].b)
			}
			c.l.iov = iov // kept for the next write; it only holds shared frames
			_, err = c.t.Writev(iov)
		}
	}
	if err == nil && c.state != stClosed { // else the reactor closed the connection
		c.out.reset()
		c.pongQueued = false
	}
	return total
}

// checkMarks applies the outbox's high- and low-water marks, given the
// bytes in the reactor's write buffer. A client is over the mark when the
// bytes or frames queued pass the high mark; it has drained when the socket
// took every byte handed to it (the reactor holds none) and the outbox is
// under the low mark. Paused topics continue from history only then, a
// chunk at a time, so a client that reads slowly is fed at its own pace.
func (c *conn) checkMarks(buffered int) {
	if c.closing {
		return // nothing more is pushed: no lag, no resume
	}
	cfg := &c.l.srv.cfg
	queued := c.out.bytes + buffered
	frames := len(c.out.frames)
	switch {
	case queued > cfg.OutboxBytes || frames > cfg.OutboxMsgs:
		if !c.slow {
			c.goSlow()
		}
	case buffered == 0 && queued <= cfg.OutboxBytes/4 && frames <= cfg.OutboxMsgs/4:
		if c.paused > 0 {
			budget := cfg.OutboxBytes / 2
			for _, s := range c.subs {
				if s.paused && budget > 0 {
					budget -= c.resumeChunk(s, budget)
				}
			}
		}
		// A client stays slow until it has caught up (its lagged topics
		// are live again), not merely until the kernel has taken what we
		// wrote: a stalled client's socket buffer takes the first chunks
		// of its catch-up, and it must still meet --slow-timeout.
		if c.slow && c.paused == 0 {
			c.slow = false
			c.l.srv.metrics.slowClients.Dec()
		}
	}
}

// goSlow stops pushing every non-conflated topic: each gets lag with the
// last seq handed to the socket (a topic already catching up gets no second
// lag), and the queued frames of all paused topics are dropped.
func (c *conn) goSlow() {
	m := c.l.srv.metrics
	c.slow = true
	c.slowSince = c.l.srv.wheel.NowNano()
	m.slowClients.Inc()
	var lagged []*subscription
	for _, s := range c.subs {
		if s.conflate {
			continue
		}
		if !s.paused {
			c.pause(s)
			lagged = append(lagged, s)
		}
		s.last = s.written
	}
	c.out.drop(isPaused)
	for _, s := range lagged {
		m.lags.Inc()
		c.push(codec.AppendLag(nil, c.format, s.topic, s.written))
	}
	c.armTimer(c.slowSince)
}

// armTimer sets the wheel timer to the nearest deadline after now.
func (c *conn) armTimer(now int64) {
	if c.state == stClosed {
		return
	}
	cfg := &c.l.srv.cfg
	var next int64
	if c.lingering {
		next = c.nextPing
	} else if c.state == stHandshake {
		next = c.begun + int64(cfg.HandshakeTimeout)
	} else {
		next = min(c.nextPing, c.lastSeen+int64(cfg.IdleTimeout))
		if c.claims != nil {
			next = min(next, c.tokenExp)
		}
		if c.slow {
			next = min(next, c.slowSince+int64(cfg.SlowTimeout))
		}
		if c.begun != 0 {
			next = min(next, c.begun+int64(cfg.MessageTimeout))
		}
	}
	c.l.srv.wheel.Add(&c.timer, time.Duration(max(next-now, 0)))
}

// onTimer runs on the loop when the connection's wheel timer fired: it
// closes on a passed deadline, sends a heartbeat when due, and re-arms.
func (c *conn) onTimer() {
	if c.state == stClosed {
		return
	}
	cfg := &c.l.srv.cfg
	now := c.l.srv.wheel.NowNano()
	if c.closing {
		if c.lingering && now >= c.nextPing {
			_ = c.t.Close() // the client had its time to read and go
		} else if c.lingering {
			c.armTimer(now)
		}
		return
	}
	switch {
	case c.state == stHandshake:
		if now-c.begun >= int64(cfg.HandshakeTimeout) {
			c.l.srv.metrics.handshakeTimeouts.Inc()
			c.closing = true
			_ = c.t.Close()
			return
		}
	case c.claims != nil && now >= c.tokenExp:
		c.closeWith(CloseTokenExpired, "token expired")
		return
	case c.begun != 0 && now-c.begun >= int64(cfg.MessageTimeout):
		c.closeWith(CloseBadRequest, "a message was not finished within the message timeout")
		return
	case now-c.lastSeen >= int64(cfg.IdleTimeout):
		c.closeWith(CloseIdle, "idle timeout")
		return
	case c.slow && now-c.slowSince >= int64(cfg.SlowTimeout):
		c.closeWith(CloseSlowClient, "slow client")
		return
	case now >= c.nextPing:
		if c.kind == reactor.WebSocket {
			c.push(codec.AppendWSFrame(nil, ws.OpPing, nil))
		} else {
			c.push(codec.AppendPingMessage(nil))
		}
		c.nextPing = now + int64(cfg.Heartbeat)
	}
	c.armTimer(now)
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
	c.out.reset()
	for len(c.subs) > 0 {
		c.dropSub(c.subs[len(c.subs)-1])
	}
	c.rare = nil
}

// sub returns the subscription of topic name, or nil.
func (c *conn) sub(name string) *subscription {
	for _, s := range c.subs {
		if s.topic == name {
			return s
		}
	}
	return nil
}

func (c *conn) addSub(s *subscription) {
	c.subs = append(c.subs, s)
	c.l.addSub(s)
	c.l.srv.metrics.subscriptions.Inc()
}

func (c *conn) dropSub(s *subscription) {
	for i, held := range c.subs {
		if held == s {
			last := len(c.subs) - 1
			c.subs[i], c.subs[last] = c.subs[last], nil
			c.subs = c.subs[:last]
			break
		}
	}
	if len(c.subs) == 0 {
		c.subs = nil
	}
	c.l.removeSub(s)
	c.l.srv.engine.Unsubscribe(s.topic, c.l.id)
	c.l.srv.metrics.subscriptions.Dec()
	if s.paused {
		c.paused--
	}
	if len(c.out.frames) > 0 { // its queued frames go with it, no other's
		c.out.drop(func(f *subscription) bool { return f == s })
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
	c.l.srv.metrics.closes(CloseServerDraining).Inc()
	c.push(codec.AppendClose(nil, c.format, CloseServerDraining, "server draining"))
	if c.kind == reactor.WebSocket {
		c.push(codec.AppendWSClose(nil, CloseServerDraining, "server draining"))
	}
	c.closeAfterFlush()
}
