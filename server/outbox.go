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
type outbox struct {
	frames []outFrame
	bytes  int
}

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

// reset empties the outbox, giving back a large backing array.
func (o *outbox) reset() {
	clear(o.frames)
	if cap(o.frames) > keptOutboxCap {
		o.frames = nil
	} else {
		o.frames = o.frames[:0]
	}
	o.bytes = 0
}
