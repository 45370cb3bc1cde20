package server

// outFrame is one whole frame waiting in a connection's outbox. A frame of
// a publication is shared with every other subscriber and never copied; sub
// and seq say which subscription it advances, so that lag can drop it and
// conflation can replace it. Replies and control frames have no sub.
type outFrame struct {
	b   []byte
	sub *subscription
	seq uint64
}

// outbox is a connection's queue of frames not yet handed to the socket.
// An outbox holds frames past the end of a loop turn only while its
// connection waits for the socket (it is on the loop's poll list), so the
// loop counts the bytes queued for its clients, which --queue-memory
// bounds, as it polls them (loop.poll), not per frame.
//
// It is bounded at enqueue: a live publication that takes it over its
// high-water mark (marks) makes the client slow at once (conn.deliver),
// which drops the queued frames of its lagged topics; what stays are
// replies and control frames, which the paused input bounds (a client
// over its budget has its commands left unread), and the newest frame of
// each conflated topic. The engine holds at most one outbox more (flush
// writes only to a socket whose earlier bytes are gone). The writer
// always takes the whole outbox in one write, so a slice suffices where a
// ring would only ever turn at zero.
type outbox struct {
	frames []outFrame
	bytes  int
}

// push appends f (small enough to inline on the fan-out's path).
func (o *outbox) push(f outFrame) int {
	o.frames = append(o.frames, f)
	o.bytes += len(f.b)
	return len(o.frames) - 1
}

// replace swaps the frame at i for a newer one of the same subscription.
func (o *outbox) replace(i int, b []byte, seq uint64) {
	o.bytes += len(b) - len(o.frames[i].b)
	o.frames[i].b, o.frames[i].seq = b, seq
}

// drop removes the frames of the subscriptions gone says are gone,
// keeping the order of the rest, and renumbers the conflation slots of
// those that remain.
func (o *outbox) drop(gone func(*subscription) bool) {
	kept := o.frames[:0]
	for _, f := range o.frames {
		if f.sub != nil && gone(f.sub) {
			o.bytes -= len(f.b)
			continue
		}
		if f.sub != nil && f.sub.pending >= 0 {
			f.sub.pending = len(kept)
		}
		kept = append(kept, f)
	}
	clear(o.frames[len(kept):])
	o.frames = kept
}

func isPaused(s *subscription) bool { return s.paused }

// reset empties the outbox (its frames were written, or the connection
// closed), giving a large backing array to the loop's spares.
func (o *outbox) reset(l *loop) {
	clear(o.frames)
	if c := cap(o.frames); c > keptOutboxCap {
		if c <= maxSpareCap {
			l.spareFrames = append(l.spareFrames, o.frames[:0])
		}
		o.frames = nil
	} else {
		o.frames = o.frames[:0]
	}
	o.bytes = 0
}

// maxSpareCap is the largest outbox array kept as a spare (160 KiB): a
// catch-up's larger one goes.
const maxSpareCap = 4096

// largerFrames returns an array for an outbox outgrowing frames, with its
// frames: a spare of the loop's when one is larger, else nil (append
// grows it). Every connection of a busy loop outgrows its small array in
// each turn and gives the larger one back at the write: the spares save
// allocating (and collecting) them again, turn after turn.
//
//go:noinline // the rare path: push stays small enough to inline
func (l *loop) largerFrames(frames []outFrame) []outFrame {
	n := len(l.spareFrames)
	if n == 0 || cap(l.spareFrames[n-1]) <= len(frames) {
		return frames
	}
	a := l.spareFrames[n-1]
	l.spareFrames[n-1] = nil
	l.spareFrames = l.spareFrames[:n-1]
	l.sparesTaken++
	a = append(a, frames...)
	clear(frames)
	return a
}

// trimSpares gives the spare arrays back to the runtime after two turns in
// a row that took none: a quiet loop keeps no memory for bursts gone by
// (heartbeats and deadlines run turns on every loop). Loop goroutine only.
func (l *loop) trimSpares() {
	switch {
	case l.sparesTaken > 0:
		l.sparesIdle = 0
	case len(l.spareFrames) == 0:
	case l.sparesIdle < 1:
		l.sparesIdle++
	default:
		clear(l.spareFrames)
		l.spareFrames, l.sparesIdle = nil, 0
	}
	l.sparesTaken = 0
}

// over reports whether the outbox, with held bytes in the engine, is past
// its high-water mark.
func (o *outbox) over(m *marks, held int) bool {
	return o.bytes+held > m.hiBytes || len(o.frames) > m.hiMsgs
}

// maxIovecs is the most buffers one writev may carry (Linux IOV_MAX).
const maxIovecs = 1024

// keptOutboxCap is the outbox capacity a connection keeps between writes;
// a larger one is given back so an idle connection stays small.
const keptOutboxCap = 64

// coalesceMax is the largest outbox written as one buffer: its frames are
// copied together and written with one write, which costs less than a
// writev of many small frames (and x/sys allocates a writev's vector).
const coalesceMax = 256 << 10

// flush hands the outbox to the socket, unless the socket still holds
// earlier bytes: then the outbox waits and the marks are checked. A
// connection that waits for its socket to drain (with frames queued, or
// topics to resume) is polled by the loop. It returns the bytes handed over.
func (c *conn) flush() int {
	c.dirty = false
	if c.state == stClosed {
		c.out.reset(c.l)
		return 0
	}
	if buffered := c.t.OutboundBuffered(); buffered > 0 && !c.closing {
		c.checkMarks(buffered)
		c.block() // its frames wait, and the count of held bytes is kept
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
	// A small write the kernel takes whole, as a rule: only a larger one,
	// or a client that lags, is looked at again (what the engine kept
	// counts in --queue-memory through poll, and lagged topics resume).
	if c.slow || c.paused > 0 || n > smallWrite {
		buffered := c.t.OutboundBuffered()
		if c.slow || c.paused > 0 || n > c.l.mk.loBytes {
			c.checkMarks(buffered)
		}
		if buffered > 0 {
			c.block()
		}
	}
	c.resumeInput()
	return n
}

// smallWrite is the largest write whose rest, should the socket not take
// it all, is left out of --queue-memory's count until the next write.
const smallWrite = 4 << 10

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
	c.l.stageAt(stWrite)
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
	c.l.stageAt(stWritten)
	if err == nil && c.state != stClosed { // else the reactor closed the connection
		c.out.reset(c.l)
		c.pongQueued = false
	}
	return total
}
