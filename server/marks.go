package server

// marks are the bounds of a connection's queue, computed in one place
// (loop.refreshMarks). Over hi the client is slow (lag); once the engine
// holds nothing of its bytes and the outbox is under lo, its lagged topics
// continue from history, chunk bytes of it at a time, so a client that
// reads slowly is fed at its own pace.
type marks struct {
	hiBytes, hiMsgs int
	loBytes, loMsgs int
	chunk           int
}

// minShare is the least high-water mark --queue-memory's share gives a
// connection: a few dozen publications.
const minShare = 16 << 10

// refreshMarks computes the loop's marks: --outbox-bytes and
// --outbox-msgs, and while the bytes queued for every client together are
// over --queue-memory, each connection's share of it, so that memory and
// latency stay bounded when the node cannot keep up: the clients with the
// most queued go slow first, and continue from history (reset, when
// they are further behind than it holds). Loop goroutine only.
func (l *loop) refreshMarks() {
	cfg := &l.srv.cfg
	m := marks{hiBytes: cfg.OutboxBytes, hiMsgs: cfg.OutboxMsgs}
	if budget := cfg.QueueMemory; budget > 0 && l.srv.queuedBytes(l) > budget {
		share := budget / max(l.srv.openConns(), 1)
		m.hiBytes = int(min(int64(m.hiBytes), max(share, minShare)))
	}
	m.loBytes, m.loMsgs, m.chunk = m.hiBytes/4, m.hiMsgs/4, m.hiBytes/2
	l.mk = m
}

// queuedBytes is what is queued for every client, as each loop counted it
// at its last poll (l's own from l's goroutine; l nil: from any goroutine).
func (s *Server) queuedBytes(l *loop) int64 {
	var n int64
	for _, o := range s.loops {
		if o == l {
			n += l.queued
		} else {
			n += o.queuedPub.Load()
		}
	}
	return n
}

// checkMarks applies the outbox's high- and low-water marks, given the
// bytes in the engine's write buffer. A client is over the mark when the
// bytes or frames queued pass the high mark; it has drained when the socket
// took every byte handed to it (the reactor holds none) and the outbox is
// under the low mark. Paused topics continue from history only then, a
// chunk at a time, so a client that reads slowly is fed at its own pace.
func (c *conn) checkMarks(buffered int) {
	if c.closing {
		return // nothing more is pushed: no lag, no resume
	}
	m := &c.l.mk
	switch {
	case c.out.over(m, buffered):
		if !c.slow {
			c.goSlow()
		}
	case buffered == 0 && c.out.bytes <= m.loBytes && len(c.out.frames) <= m.loMsgs:
		if c.paused > 0 {
			budget := m.chunk
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
