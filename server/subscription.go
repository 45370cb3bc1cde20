package server

import (
	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/topic"
)

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
		c.resumeChunk(s, c.l.mk.chunk)
		return true
	}
	s.last = p.Seq
	frame := c.l.frame(p, c.format)
	if s.pending >= 0 {
		c.out.replace(s.pending, frame, p.Seq)
		c.l.conflated++
		return true
	}
	if len(c.out.frames) == cap(c.out.frames) { // a busy turn: take a spare array
		c.out.frames = c.l.largerFrames(c.out.frames)
	}
	c.queue(frame, s, p.Seq)
	if !c.slow && c.out.over(&c.l.mk, 0) {
		// Bounded at enqueue, not at the next write: a socket that has
		// taken everything before is handed the outbox now; one that
		// has not makes the client slow.
		if c.t.OutboundBuffered() == 0 {
			c.l.stats.bytesOut.Add(uint64(c.flush()))
		} else {
			c.goSlow()
		}
	}
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

// lag stops pushing one live topic whose publications the loop passed
// over (it fell behind, see loop.deliverPending): the client gets lag with
// the last seq handed to its socket, the topic's queued frames are
// dropped, and it continues from history once the outbox has drained
// (checkMarks), as after a slow client's lag: the missed range, or reset
// and the snapshot when history no longer holds it.
func (c *conn) lag(s *subscription) {
	if c.closing || s.paused || s.conflate {
		return
	}
	c.pause(s)
	s.last = s.written
	c.out.drop(func(f *subscription) bool { return f == s })
	c.l.srv.metrics.lags.Inc()
	c.push(codec.AppendLag(nil, c.format, s.topic, s.written))
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
