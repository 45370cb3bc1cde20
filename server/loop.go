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
	// wake asks the loop's goroutine to run Run soon; it must not block.
	wake func()

	mu        sync.Mutex // guards inbox, expired, tasks, pollDue, drainDue and scheduled
	inbox     []*topic.Publication
	tasks     []func()
	expired   []*conn
	pollDue   bool
	drainDue  bool
	scheduled bool
	// busy is set while the loop's goroutine handles socket input: work
	// scheduled then (a publication from a client's pub) needs no wake,
	// the loop runs it before it waits again (leave).
	busy atomic.Bool

	// Owned by the loop goroutine.
	spare      []*topic.Publication
	spareConns []*conn
	topics     map[string]*loopTopic
	conns      *conn // open connections, a list through conn.next
	open       atomic.Int64
	dirty      []*conn // connections to write at the end of this turn
	blocked    []*conn // connections whose outbox waits for the socket
	pollTimer  wheel.Timer
	iov        [][]byte // writev scratch
	wbuf       []byte   // a connection's frames joined for one write
	cur        *topic.Publication
	curFrames  [codec.TCPMsgpack + 1][]byte // cur's frames, resolved once per loop
	cmd        codec.Command                // decode scratch, reused for every command
	conflated  uint64                       // replacements this turn

	stats loopStats
}

// loopStats are the loop's counters; the loop adds to them once per turn.
type loopStats struct {
	deliveries atomic.Uint64
	bytesOut   atomic.Uint64
	conflated  atomic.Uint64
}

// loopTopic is the loop's list of subscribers of one topic.
type loopTopic struct {
	subs []*subscription
}

func newLoop(id int, srv *Server) *loop {
	l := &loop{id: id, srv: srv, topics: make(map[string]*loopTopic)}
	l.pollTimer.Init(l.pollFired)
	return l
}

// Enqueue hands a publication to the loop. Any goroutine may call it; the
// topic engine does, with the topic's lock held, in seq order per topic. The
// loop is woken once per batch, not once per publication.
func (l *loop) Enqueue(p *topic.Publication) {
	l.mu.Lock()
	l.inbox = append(l.inbox, p)
	l.scheduleLocked()
}

// expire hands a connection whose deadline timer fired to the loop. The
// wheel's goroutine calls it.
func (l *loop) expire(c *conn) {
	l.mu.Lock()
	l.expired = append(l.expired, c)
	l.scheduleLocked()
}

// pollFired asks the loop to look at its blocked connections again. The
// wheel's goroutine calls it.
func (l *loop) pollFired() {
	l.mu.Lock()
	l.pollDue = true
	l.scheduleLocked()
}

// Post implements reactor.Loop: it runs fn on the loop's goroutine soon.
// Any goroutine may call it; work done off the loop (slow token checks)
// hands its result back so.
func (l *loop) Post(fn func()) {
	l.mu.Lock()
	l.tasks = append(l.tasks, fn)
	l.scheduleLocked()
}

// requestDrain asks the loop to tell every connection the server drains.
// Any goroutine may call it.
func (l *loop) requestDrain() {
	l.mu.Lock()
	l.drainDue = true
	l.scheduleLocked()
}

// scheduleLocked wakes the loop unless a wake is pending or the loop is
// busy and will look before it waits; it unlocks l.mu.
func (l *loop) scheduleLocked() {
	wake := !l.scheduled
	l.scheduled = true
	l.mu.Unlock()
	if wake && l.wake != nil && !l.busy.Load() {
		l.wake()
	}
}

// SetWake implements reactor.Loop.
func (l *loop) SetWake(wake func()) { l.wake = wake }

// Enter implements reactor.Loop: it marks the loop busy with socket input;
// Leave ends that and runs what was scheduled meanwhile. A client's
// publication so reaches the subscribers of the same loop in the same
// turn, without a wake (a system call) and a second turn.
func (l *loop) Enter() { l.busy.Store(true) }

// Leave implements reactor.Loop.
func (l *loop) Leave() {
	l.busy.Store(false)
	l.RunPending()
}

// RunPending implements reactor.Loop: it runs the loop's pending work now.
func (l *loop) RunPending() {
	l.mu.Lock()
	due := l.scheduled
	l.mu.Unlock()
	if due {
		l.turn()
	}
}

// turn runs what reached the loop: posted tasks, deadlines, blocked
// connections, the drain notice, publications, then one write per
// connection. Loop goroutine only.
func (l *loop) turn() {
	l.mu.Lock()
	batch, expired, poll, draining, tasks := l.inbox, l.expired, l.pollDue, l.drainDue, l.tasks
	l.inbox, l.expired, l.pollDue, l.drainDue, l.tasks = l.spare, l.spareConns, false, false, nil
	l.scheduled = false
	l.mu.Unlock()

	for _, fn := range tasks {
		fn()
	}
	for _, c := range expired {
		c.onTimer()
	}
	clear(expired)
	l.spareConns = expired[:0]
	if poll {
		l.poll()
	}
	if draining {
		for c := l.conns; c != nil; c = c.next {
			c.drainNotice()
		}
	}

	var n uint64
	for _, p := range batch {
		if lt := l.topics[p.Topic]; lt != nil {
			l.cur, l.curFrames = p, [len(l.curFrames)][]byte{}
			for _, s := range lt.subs {
				if s.c.deliver(s, p) {
					n++
				}
			}
		}
	}
	l.cur, l.curFrames = nil, [len(l.curFrames)][]byte{}
	clear(batch)
	l.spare = batch[:0]
	l.stats.deliveries.Add(n)
	l.flush()
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

// flush writes every connection with a pending outbox. Loop goroutine only.
func (l *loop) flush() {
	var bytes uint64
	// A write may queue more (a drained slow client resumes): those
	// connections are appended and written in the same pass.
	for i := 0; i < len(l.dirty); i++ {
		c := l.dirty[i]
		l.dirty[i] = nil
		bytes += uint64(c.flush())
	}
	l.dirty = l.dirty[:0]
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
	kept := l.blocked[:0]
	for _, c := range l.blocked {
		switch {
		case c.state == stClosed:
			c.blocked = false
		case c.t.OutboundBuffered() == 0:
			c.blocked = false
			c.markDirty()
		default:
			c.checkMarks(c.t.OutboundBuffered())
			c.resumeInput()
			kept = append(kept, c)
		}
	}
	clear(l.blocked[len(kept):])
	l.blocked = kept
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
