package server

import (
	"sync"
	"sync/atomic"

	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/topic"
	"github.com/tickfan/tickfan/wheel"
)

// loop is one event loop's share of the server: its connections' subscriber
// index and the inbox through which publications and fired deadlines reach
// them. Everything but the inbox is owned by the loop's goroutine.
type loop struct {
	id  int
	srv *Server
	// wake asks the engine to run RunPending on the loop's goroutine soon;
	// it must not block.
	wake func()

	// mu guards the inbox: the queues, the overflow set and the flags. It
	// is a leaf lock: nothing else is taken while it is held.
	mu       sync.Mutex
	inbox    queue[*topic.Publication] // bounded: inboxBound
	tasks    queue[func()]
	expired  queue[*conn]
	overflow map[string]struct{} // topics with publications the full inbox refused
	// overflowed counts those publications, for the metric.
	overflowed uint64
	pollDue    bool
	drainDue   bool
	scheduled  bool
	// busy is set while the loop's goroutine handles socket input: work
	// scheduled then (a publication from a client's pub) needs no wake,
	// the loop runs it before it waits again (Leave).
	busy atomic.Bool

	// Owned by the loop goroutine.
	topics    map[string]*loopTopic
	conns     *conn // open connections, a list through conn.next
	open      atomic.Int64
	dirty     []*conn // connections to write at the end of this turn
	replied   []*conn // and after them those with only replies (markReplied)
	blocked   []*conn // connections whose outbox waits for the socket
	pollTimer wheel.Timer
	iov       [][]byte // writev scratch
	wbuf      []byte   // a connection's frames joined for one write
	cur       *topic.Publication
	curFrames [codec.TCPMsgpack + 1][]byte // cur's frames, resolved once per loop
	cmd       codec.Command                // decode scratch, reused for every command
	msg       []byte                       // the message being run, for a command that must wait
	// pending are the publications taken from the inbox and not yet
	// delivered, from pendingAt on (a turn delivers a bounded share);
	// behind are the topics lagged this turn (lagTopic); skipped counts
	// the publications passed over.
	pending   []*topic.Publication
	pendingAt int
	behind    map[string]struct{}
	skipped   uint64
	// spareFrames are outbox arrays given back by the writes, for the
	// next turn's (outbox.reset, largerFrames, trimSpares); sparesTaken
	// counts this turn's takings.
	spareFrames [][]outFrame
	sparesTaken int
	sparesIdle  int // turns in a row that took no spare
	// turnVisits bounds a turn's fan-out (the const turnVisits; tests
	// set less).
	turnVisits int
	conflated  uint64 // replacements this turn
	mk         marks  // the outbox marks, refreshed each turn
	// queued is the bytes queued for the loop's clients as of the last
	// poll: the outboxes of the connections waiting for their socket and
	// what the engine holds for them (every connection with bytes past a
	// turn is on the poll list); queuedPub is it for other goroutines.
	queued    int64
	queuedPub atomic.Int64

	stats  loopStats
	stages stageClock // stages_off.go, stages.go
}

// loopStats are the loop's counters; the loop adds to them once per turn.
type loopStats struct {
	deliveries atomic.Uint64
	bytesOut   atomic.Uint64
	conflated  atomic.Uint64
}

// loopTopic is the loop's list of subscribers of one topic, and the
// newest publication of it the loop has taken from its inbox.
type loopTopic struct {
	subs   []*subscription
	epoch  string
	newest uint64
}

func newLoop(id int, srv *Server) *loop {
	l := &loop{id: id, srv: srv, topics: make(map[string]*loopTopic)}
	l.inbox.max = inboxBound(srv.cfg.HistorySize)
	l.turnVisits = turnVisits
	l.pollTimer.Init(l.pollFired)
	return l
}

// turn runs what reached the loop: posted tasks, deadlines, blocked
// connections, the drain notice, publications, then one write per
// connection. Loop goroutine only.
func (l *loop) turn() {
	l.mu.Lock()
	batch, expired, tasks := l.inbox.take(), l.expired.take(), l.tasks.take()
	poll, draining, overflow, overflowed := l.pollDue, l.drainDue, l.overflow, l.overflowed
	l.pollDue, l.drainDue, l.overflow, l.overflowed = false, false, nil, 0
	l.scheduled = false
	l.mu.Unlock()

	l.refreshMarks()
	for _, fn := range tasks {
		fn()
	}
	l.tasks.recycle(tasks)
	for _, c := range expired {
		c.onTimer()
	}
	l.expired.recycle(expired)
	if poll {
		l.poll()
	}
	if draining {
		for c := l.conns; c != nil; c = c.next {
			c.drainNotice()
		}
	}

	for name := range overflow {
		l.lagTopic(name)
	}
	n, more := l.deliverPending(batch)
	if overflowed += l.skipped; overflowed > 0 {
		l.srv.metrics.inboxOverflows.Add(float64(overflowed))
		l.skipped = 0
	}
	clear(l.behind)
	l.stats.deliveries.Add(n)
	l.flush()
	l.trimSpares()
	if more {
		l.again()
	}
}

// lagTopic stops pushing the topic live to the loop's subscribers: the
// loop passed publications of it over (conn.lag). Once per topic a turn.
func (l *loop) lagTopic(name string) {
	if _, done := l.behind[name]; done {
		return
	}
	if l.behind == nil {
		l.behind = make(map[string]struct{})
	}
	l.behind[name] = struct{}{}
	if lt := l.topics[name]; lt != nil {
		for _, s := range lt.subs {
			s.c.lag(s)
		}
	}
}

// frame returns p's frame in format f, asking the publication's cache once
// per loop turn rather than once per subscriber.
func (l *loop) frame(p *topic.Publication, f codec.Format) []byte {
	if p != l.cur {
		return codec.Frame(p, f)
	}
	if b := l.curFrames[f]; b != nil {
		return b
	}
	b := codec.Frame(p, f)
	l.curFrames[f] = b
	return b
}

// flush writes every connection with a pending outbox: those with
// publications first, then those with only replies. While the engine
// hands the loop socket input (Enter to Leave) it waits for Leave, so
// that what the input caused is written once, publications first.
// Loop goroutine only.
func (l *loop) flush() {
	if l.busy.Load() {
		return
	}
	var bytes uint64
	// A write may queue more (a drained slow client resumes): those
	// connections are appended and written in the same pass.
	for len(l.dirty) > 0 || len(l.replied) > 0 {
		for i := 0; i < len(l.dirty); i++ {
			c := l.dirty[i]
			l.dirty[i] = nil
			bytes += uint64(c.flush())
		}
		l.dirty = l.dirty[:0]
		for i := 0; i < len(l.replied); i++ {
			c := l.replied[i]
			l.replied[i] = nil
			bytes += uint64(c.flush())
			l.stageAt(stAcked)
		}
		l.replied = l.replied[:0]
	}
	if bytes > 0 {
		l.stats.bytesOut.Add(bytes)
	}
	if l.conflated > 0 {
		l.stats.conflated.Add(l.conflated)
		l.conflated = 0
	}
}

// block puts a connection whose socket is still busy on the poll list.
func (l *loop) block(c *conn) {
	if len(l.blocked) == 0 {
		l.srv.wheel.Add(&l.pollTimer, l.srv.cfg.WheelTick)
	}
	l.blocked = append(l.blocked, c)
}

// poll writes the blocked connections whose sockets have drained and checks
// the marks of the others (their socket buffers shrink as the reactor
// writes). Loop goroutine only.
func (l *loop) poll() {
	var held int64
	kept := l.blocked[:0]
	for _, c := range l.blocked {
		switch {
		case c.state == stClosed:
			c.blocked = false
		case c.t.OutboundBuffered() == 0:
			c.blocked = false
			c.markDirty()
		default:
			h := c.t.OutboundBuffered()
			c.checkMarks(h)
			held += int64(h + c.out.bytes)
			c.resumeInput()
			kept = append(kept, c)
		}
	}
	clear(l.blocked[len(kept):])
	l.blocked = kept
	l.queued = held
	l.queuedPub.Store(held)
	if len(l.blocked) > 0 {
		l.srv.wheel.Add(&l.pollTimer, l.srv.cfg.WheelTick)
	}
}

// link adds a new connection to the loop's list. Loop goroutine only.
func (l *loop) link(c *conn) {
	c.next = l.conns
	if l.conns != nil {
		l.conns.prev = c
	}
	l.conns = c
	l.open.Add(1)
}

// unlink removes a closed connection from the list. Loop goroutine only.
func (l *loop) unlink(c *conn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else if l.conns == c {
		l.conns = c.next
	} else {
		return // not linked
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	c.prev, c.next = nil, nil
	l.open.Add(-1)
}

// addSub indexes a subscription. Loop goroutine only.
func (l *loop) addSub(s *subscription) {
	lt := l.topics[s.topic]
	if lt == nil {
		lt = &loopTopic{}
		l.topics[s.topic] = lt
	}
	s.idx = len(lt.subs)
	lt.subs = append(lt.subs, s)
}

// removeSub drops a subscription from the index. Loop goroutine only.
func (l *loop) removeSub(s *subscription) {
	lt := l.topics[s.topic]
	if lt == nil || s.idx >= len(lt.subs) || lt.subs[s.idx] != s {
		return
	}
	last := len(lt.subs) - 1
	lt.subs[s.idx] = lt.subs[last]
	lt.subs[s.idx].idx = s.idx
	lt.subs[last] = nil
	lt.subs = lt.subs[:last]
	if len(lt.subs) == 0 {
		delete(l.topics, s.topic)
	}
}
