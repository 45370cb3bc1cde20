package topic

import (
	"fmt"
)

// State is a topic as a broker read it from its store: its epoch and
// seq, its latest snapshot, and the tail of its history (in seq order,
// ending at Seq when the store still held it).
type State struct {
	Epoch   string
	Seq     uint64
	Snap    *Publication
	History []*Publication
}

// Applied is what Apply did with a publication.
type Applied int

const (
	// Placed: the publication continued the topic and went to its loops.
	Placed Applied = iota
	// Duplicate: the topic already holds it.
	Duplicate
	// Gap: it does not continue the topic (a seq missed, or another
	// epoch): the broker must read the topic again (Hold) first.
	Gap
	// NotHeld: the engine does not hold the topic.
	NotHeld
)

// Held reports whether the engine holds the named topic (Held mode) and
// the position it holds it at.
func (e *Engine) Held(name string) (Position, bool) {
	t, ok := e.lookup(name)
	if !ok {
		return Position{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return Position{Epoch: t.epoch, Seq: t.seq}, !t.released
}

// Hold makes the engine hold the named topic as st gives it (Held mode),
// or brings a held topic up to st. When st continues what the topic holds
// (same epoch, its history covers the seqs in between) the missed
// publications are applied in order and reach the loops; otherwise the
// topic is replaced: st's epoch, seq, snapshot and history, and the loops
// with subscribers get its newest publication, which they find does not
// continue what they hold, so their subscribers resume (reset and the
// snapshot when the range is gone). A st older than what is held changes
// nothing.
//
// A topic nobody has published to (seq 0) takes no place of MaxTopics:
// it is held for its subscribers as a name is. A published topic new to
// the engine fails with ErrTooManyTopics when MaxTopics are taken; one
// held already keeps its subscribers served when its first publication
// comes, past MaxTopics if need be.
func (e *Engine) Hold(name string, st State) error {
	if err := ValidName(name); err != nil {
		return err
	}
	t, fresh := e.holdTopic(name)
	t.mu.Lock()
	defer t.mu.Unlock()
	if st.Seq > 0 && !t.counted {
		if fresh && !e.reserve(1) {
			t.released = true
			e.topics.CompareAndDelete(name, t)
			return fmt.Errorf("topic %s: %w (limit %d)", name, ErrTooManyTopics, e.cfg.MaxTopics)
		}
		if !fresh {
			e.count.Add(1)
		}
		t.counted = true
	}
	hist := contiguous(st.History, st.Seq)
	switch {
	case st.Epoch == t.epoch && st.Seq <= t.seq:
		return nil // nothing new
	case st.Epoch == t.epoch && len(hist) > 0 && hist[0].Seq <= t.seq+1:
		for _, p := range hist {
			if p.Seq == t.seq+1 {
				e.place(t, p)
			}
		}
		if st.Snap != nil && (t.snap == nil || st.Snap.Seq > t.snap.Seq) {
			t.snap = st.Snap
		}
		return nil
	}
	t.epoch, t.seq, t.snap = st.Epoch, st.Seq, st.Snap
	t.hist = history{limit: e.cfg.HistorySize}
	for _, p := range hist {
		t.hist.push(p)
	}
	if len(hist) > 0 {
		e.fanout(t, hist[len(hist)-1])
	}
	return nil
}

// contiguous returns the longest run of h that ends at seq with no gap,
// or nothing when h does not end at seq.
func contiguous(h []*Publication, seq uint64) []*Publication {
	if len(h) == 0 || h[len(h)-1].Seq != seq {
		return nil
	}
	i := len(h) - 1
	for i > 0 && h[i-1].Seq+1 == h[i].Seq {
		i--
	}
	return h[i:]
}

// holdTopic returns the named topic, creating it (Held mode, without a
// place of MaxTopics) if needed; fresh tells it was created.
func (e *Engine) holdTopic(name string) (t *Topic, fresh bool) {
	for {
		if v, ok := e.topics.Load(name); ok {
			t := v.(*Topic)
			t.mu.Lock()
			gone := t.released
			t.mu.Unlock()
			if !gone {
				return t, false
			}
			e.topics.CompareAndDelete(name, t) // Release's own delete may not have run yet
			continue
		}
		t := &Topic{name: name, conflate: e.cfg.Conflate.Match(name), hist: history{limit: e.cfg.HistorySize}}
		if _, loaded := e.topics.LoadOrStore(name, t); loaded {
			continue
		}
		return t, true
	}
}

// Apply places a publication that the broker gave its seq and epoch, when
// it continues the held topic (Held mode).
func (e *Engine) Apply(p *Publication) Applied {
	t, ok := e.lookup(p.Topic)
	if !ok {
		return NotHeld
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.released:
		return NotHeld
	case p.Epoch != t.epoch || p.Seq > t.seq+1:
		return Gap
	case p.Seq <= t.seq:
		return Duplicate
	}
	e.place(t, p)
	return Placed
}

// place appends the next publication of t and hands it to its loops.
// t.mu is held.
func (e *Engine) place(t *Topic, p *Publication) {
	if !t.counted { // its first publication: a topic now (see Hold)
		e.count.Add(1)
		t.counted = true
	}
	t.seq = p.Seq
	t.hist.push(p)
	if p.Snap {
		t.snap = p
	}
	e.fanout(t, p)
}

// fanout hands p to every loop with subscribers of t. t.mu is held.
func (e *Engine) fanout(t *Topic, p *Publication) {
	for loop, n := range t.loops {
		if n > 0 {
			e.sink.Enqueue(loop, p)
		}
	}
}

// Release lets the named topic go when nobody subscribes to it (Held
// mode), and reports whether it did. A subscriber that comes later finds
// it not held.
func (e *Engine) Release(name string) bool {
	t, ok := e.lookup(name)
	if !ok {
		return true
	}
	t.mu.Lock()
	if t.total > 0 || t.released {
		released := t.released
		t.mu.Unlock()
		return released
	}
	t.released = true
	if t.counted {
		e.count.Add(-1) // the topic is gone from the map, or about to be
		t.counted = false
	}
	t.mu.Unlock()
	e.topics.CompareAndDelete(name, t)
	return true
}

// subscribeHeld is Subscribe in Held mode.
func (e *Engine) subscribeHeld(name string, loop int, since *Position) (Catchup, error) {
	t, ok := e.lookup(name)
	if !ok {
		return Catchup{}, fmt.Errorf("subscribe %s: %w", name, ErrNotHeld)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.released {
		return Catchup{}, fmt.Errorf("subscribe %s: %w", name, ErrNotHeld)
	}
	t.count(e.cfg.Loops, loop)
	return t.catchup(since, true), nil
}
