package topic

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
)

// Sink receives every new publication once for each event loop that has
// subscribers of its topic. Enqueue is called with the topic's lock held and
// in seq order per topic: it must not block and must not call the Engine.
type Sink interface {
	Enqueue(loop int, p *Publication)
}

// EngineConfig configures an Engine. The zero value is usable.
type EngineConfig struct {
	// HistorySize is how many publications each topic keeps for recovery and
	// pull. Zero means 1000; a negative value keeps none.
	HistorySize int
	// Loops is the number of event loops that subscribe (loop ids are
	// 0..Loops-1). Zero means 1.
	Loops int
	// Conflate lists the latest-value topics (PROTOCOL.md "Slow clients").
	Conflate Patterns
	// MaxTopics bounds how many topics the engine holds. A topic exists once
	// it is published to: subscribers alone create none. Zero means
	// 1,000,000.
	MaxTopics int
	// Held makes the engine a follower of a broker that places
	// publications elsewhere (Redis): a topic exists only while the broker
	// holds it (Hold), its publications arrive through Apply, and
	// Subscribe and Pull of a topic not held fail with ErrNotHeld.
	Held bool
	// Idle, in Held mode, is called when a held topic's last subscriber
	// leaves, with the topic's lock held: it must not block and must not
	// call the Engine.
	Idle func(name string)
}

var (
	// ErrGone means the asked range is no longer held or its epoch is not
	// the current one (PROTOCOL.md error 410).
	ErrGone = errors.New("history gone")
	// errFuture means a position past the topic's current seq.
	errFuture = errors.New("position is past the current seq")
	// ErrTooManyTopics means the engine holds MaxTopics topics already.
	ErrTooManyTopics = errors.New("too many topics")
	// ErrNotHeld means, in Held mode, that the broker does not hold the
	// topic: it must be followed (Hold) first.
	ErrNotHeld = errors.New("topic not held")
)

// Engine holds every topic of this node. It is safe for concurrent use; each
// topic has its own lock and the topic index is a concurrent map, so
// publications to different topics never contend.
//
// A topic is created by its first publication, never by a subscriber: a
// subscriber of a topic never published to waits in the waiting index, which
// keeps only how many subscribers each loop has of that name and forgets the
// name when its last subscriber leaves. The first publication takes the
// waiting counts over as the topic's own, under the lock of the name's part
// of the index, so a subscriber that arrives at the same moment is either
// counted in them or finds the topic.
type Engine struct {
	cfg    EngineConfig
	sink   Sink
	epoch  string // the epoch of topics created by this engine
	topics sync.Map
	count  atomic.Int64
	seed   maphash.Seed
	wait   [waitParts]waitPart
}

// waitParts is how many parts the waiting index has; a Subscribe or
// Unsubscribe of a name never published, and the creation of a topic, lock
// the one part of their name.
const waitParts = 64

// waitPart is one part of the waiting index. Its fields are guarded by mu.
type waitPart struct {
	mu sync.Mutex
	// m holds, per name, its subscribers per event loop (as Topic.loops)
	// and, after them, their sum.
	m map[string][]int32
	// peak is the most names m has held since it was made: Go maps do not
	// give memory back, so m is made again once it holds far fewer.
	peak int
	_    [40]byte // one part per cache line
}

// NewEngine makes an engine that hands publications to sink.
func NewEngine(cfg EngineConfig, sink Sink) *Engine {
	if cfg.HistorySize == 0 {
		cfg.HistorySize = 1000
	}
	if cfg.Loops <= 0 {
		cfg.Loops = 1
	}
	if cfg.MaxTopics <= 0 {
		cfg.MaxTopics = 1_000_000
	}
	return &Engine{cfg: cfg, sink: sink, epoch: NewEpoch(), seed: maphash.MakeSeed()}
}

// NewEpoch names one unbroken history: random, so that a restarted node
// never repeats the epoch of its previous life, nor a topic whose history
// Redis lost the epoch of its first.
func NewEpoch() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// Topic is one topic's state. Its fields are guarded by mu.
type Topic struct {
	name     string
	conflate bool

	mu    sync.Mutex
	epoch string
	seq   uint64
	hist  history
	snap  *Publication
	loops []int32 // subscribers per event loop
	total int32   // their sum
	// released: in Held mode, the broker let the topic go (Release); a
	// caller that found it before must look again.
	released bool
	// counted: the topic has a place of MaxTopics. A Held topic nobody
	// has published to has none, as a name that only has subscribers.
	counted bool
	// mark is the seq the last Sample saw (sampled: there was one); only
	// the status page's sampler reads and writes them.
	mark    uint64
	sampled bool
}

// topic returns the named topic, creating it if needed: only a publication
// may call it. The name must be valid.
func (e *Engine) topic(name string) (*Topic, error) {
	if v, ok := e.topics.Load(name); ok {
		return v.(*Topic), nil
	}
	part := e.part(name)
	part.mu.Lock()
	defer part.mu.Unlock()
	if v, ok := e.topics.Load(name); ok { // created while we waited for the lock
		return v.(*Topic), nil
	}
	if !e.reserve(1) {
		return nil, fmt.Errorf("topic %s: %w (limit %d)", name, ErrTooManyTopics, e.cfg.MaxTopics)
	}
	t := &Topic{
		name:     name,
		conflate: e.cfg.Conflate.Match(name),
		counted:  true,
		epoch:    e.epoch,
		hist:     history{limit: e.cfg.HistorySize},
	}
	if w := part.m[name]; w != nil {
		// The waiting subscribers become the topic's: its first
		// publication reaches their loops.
		t.loops, t.total = w[:e.cfg.Loops:e.cfg.Loops], w[e.cfg.Loops]
		part.remove(name)
	}
	e.topics.Store(name, t)
	return t, nil
}

// part returns the part of the waiting index that holds name.
func (e *Engine) part(name string) *waitPart {
	return &e.wait[maphash.String(e.seed, name)%waitParts]
}

// remove forgets name. Once the map holds a quarter of its peak it is made
// again (a small one is kept), so that the index's memory follows the
// subscriptions that exist, not the most there ever were. p.mu is held.
func (p *waitPart) remove(name string) {
	delete(p.m, name)
	if n := len(p.m); p.peak >= 64 && n <= p.peak/4 {
		// Not maps.Clone: it keeps the old map's size.
		m := make(map[string][]int32, n)
		maps.Copy(m, p.m)
		p.m, p.peak = m, n
	}
}

// reserve takes n places of MaxTopics, or none if they are not all free.
func (e *Engine) reserve(n int64) bool {
	for {
		c := e.count.Load()
		if c+n > int64(e.cfg.MaxTopics) {
			return false
		}
		if e.count.CompareAndSwap(c, c+n) {
			return true
		}
	}
}

// roomFor reports whether the engine can hold the named topics, counting
// those that do not exist yet, without creating any.
func (e *Engine) roomFor(names []string) bool {
	var fresh int64
	for i, name := range names {
		if _, ok := e.topics.Load(name); ok {
			continue
		}
		dup := false
		for _, prev := range names[:i] {
			if prev == name {
				dup = true
				break
			}
		}
		if !dup {
			fresh++
		}
	}
	return e.count.Load()+fresh <= int64(e.cfg.MaxTopics)
}

// lookup returns the named topic if it exists.
func (e *Engine) lookup(name string) (*Topic, bool) {
	v, ok := e.topics.Load(name)
	if !ok {
		return nil, false
	}
	return v.(*Topic), true
}

// Topics returns how many topics the engine holds: the topics published to.
func (e *Engine) Topics() int { return int(e.count.Load()) }

// Conflated reports whether name is a latest-value topic.
func (e *Engine) Conflated(name string) bool { return e.cfg.Conflate.Match(name) }

// Publish gives a new publication of the named topic the next seq, keeps it
// in history (and as the snapshot when snap is set), and hands it to every
// loop with subscribers. data is kept, not copied: the caller gives it up.
func (e *Engine) Publish(name string, data []byte, dataMsgpack, snap bool) (Position, error) {
	if err := ValidName(name); err != nil {
		return Position{}, err
	}
	t, err := e.topic(name)
	if err != nil {
		return Position{}, err
	}
	p := &Publication{Topic: name, Snap: snap, Data: data, DataMsgpack: dataMsgpack}
	t.mu.Lock()
	t.seq++
	p.Epoch, p.Seq = t.epoch, t.seq
	t.hist.push(p)
	if snap {
		t.snap = p
	}
	for loop, n := range t.loops {
		if n > 0 {
			e.sink.Enqueue(loop, p)
		}
	}
	t.mu.Unlock()
	return Position{Epoch: p.Epoch, Seq: p.Seq}, nil
}

// Catchup is what a subscriber of a topic must receive before live
// publications, as PROTOCOL.md "Subscribe and recovery" says.
type Catchup struct {
	// Pos is the topic's current epoch and seq: the sub reply's "e" and "s".
	Pos Position
	// Recovered is the reply's "rec": the subscriber's since position was
	// continued without a break.
	Recovered bool
	// Reset asks for a reset message {t, e: Pos.Epoch, s: ResetSeq} before
	// the backlog.
	Reset    bool
	ResetSeq uint64
	// Backlog is sent in order after the reply (and reset). Its last seq,
	// when there is one, is Pos.Seq.
	Backlog []*Publication
}

// Subscribe registers one more subscriber of the named topic on the given
// loop and returns what it must receive before live publications. Live
// publications after Pos.Seq reach the loop's Sink after this returns.
// since is the last position the subscriber holds, or nil. A topic never
// published to is not created: the subscriber waits for its first
// publication (Pos is seq 0 and the epoch that publication will carry).
func (e *Engine) Subscribe(name string, loop int, since *Position) (Catchup, error) {
	if err := ValidName(name); err != nil {
		return Catchup{}, err
	}
	if loop < 0 || loop >= e.cfg.Loops {
		return Catchup{}, fmt.Errorf("subscribe %s: loop %d out of range", name, loop)
	}
	if e.cfg.Held {
		return e.subscribeHeld(name, loop, since)
	}
	t, ok := e.lookup(name)
	if !ok {
		part := e.part(name)
		part.mu.Lock()
		// Topics are created with this lock held: either the topic exists
		// now, or its first publication will find this subscriber.
		if t, ok = e.lookup(name); !ok {
			w := part.m[name]
			if w == nil {
				if part.m == nil {
					part.m = make(map[string][]int32)
				}
				w = make([]int32, e.cfg.Loops+1)
				part.m[name] = w
				part.peak = max(part.peak, len(part.m))
			}
			w[loop]++
			w[e.cfg.Loops]++
			part.mu.Unlock()
			return e.unpublished(since, true), nil
		}
		part.mu.Unlock()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.count(e.cfg.Loops, loop)
	return t.catchup(since, true), nil
}

// count adds one subscriber on loop. t.mu is held.
func (t *Topic) count(loops, loop int) {
	if t.loops == nil {
		t.loops = make([]int32, loops)
	}
	t.loops[loop]++
	t.total++
}

// Unsubscribe removes one subscriber of the named topic from the loop.
func (e *Engine) Unsubscribe(name string, loop int) {
	if loop < 0 || loop >= e.cfg.Loops {
		return
	}
	t, ok := e.lookup(name)
	if !ok {
		part := e.part(name)
		part.mu.Lock()
		if w := part.m[name]; w != nil {
			if w[loop] > 0 {
				w[loop]--
				if w[e.cfg.Loops]--; w[e.cfg.Loops] == 0 {
					part.remove(name)
				}
			}
			part.mu.Unlock()
			return
		}
		// Not waiting: either no such subscriber, or the topic was created
		// since (with this lock held) and its subscribers moved to it.
		t, ok = e.lookup(name)
		part.mu.Unlock()
		if !ok {
			return
		}
	}
	t.mu.Lock()
	if loop < len(t.loops) && t.loops[loop] > 0 {
		t.loops[loop]--
		if t.total--; t.total == 0 && e.cfg.Idle != nil && !t.released {
			e.cfg.Idle(name)
		}
	}
	t.mu.Unlock()
}

// Resume returns what a subscriber that holds since must receive to continue
// the topic (a subscriber that fell behind, or saw a gap). It does not change
// the subscriber count. When since can be continued, Reset is false.
func (e *Engine) Resume(name string, since Position) Catchup {
	t, ok := e.lookup(name)
	if !ok {
		return e.unpublished(&since, false)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.catchup(&since, false)
}

// unpublished is catchup for a topic never published to: seq 0 in the
// engine's epoch, no history, no snapshot.
func (e *Engine) unpublished(since *Position, fresh bool) Catchup {
	c := Catchup{Pos: Position{Epoch: e.epoch}}
	switch {
	case since != nil && since.Epoch == e.epoch && since.Seq == 0:
		c.Recovered = true
	case since != nil || !fresh:
		c.Reset = true // at seq 0: the next publication is the first
	}
	return c
}

// catchup applies the recovery rules. t.mu is held.
func (t *Topic) catchup(since *Position, fresh bool) Catchup {
	c := Catchup{Pos: Position{Epoch: t.epoch, Seq: t.seq}}
	if since != nil {
		if since.Epoch == t.epoch && since.Seq <= t.seq && t.hist.holds(since.Seq+1, t.seq) {
			c.Recovered = true
			c.Backlog = t.hist.appendRange(make([]*Publication, 0, t.seq-since.Seq), since.Seq+1, t.seq)
			return c
		}
		c.Reset = true
	} else if !fresh {
		c.Reset = true
	}
	// From the start: the latest snapshot and the updates after it, when the
	// history still holds all of them; otherwise live updates from seq+1.
	c.ResetSeq = t.seq
	if t.snap != nil && t.hist.holds(t.snap.Seq+1, t.seq) {
		c.ResetSeq = t.snap.Seq
		c.Backlog = append(make([]*Publication, 0, 1+t.seq-t.snap.Seq), t.snap)
		c.Backlog = t.hist.appendRange(c.Backlog, t.snap.Seq+1, t.seq)
	}
	return c
}

// Pull returns up to limit publications of the named topic after from, in
// order, and whether more follow. It fails with ErrGone when from's epoch is
// not the current one or the range is no longer held, and with a
// wrapped errFuture when from is past the current seq.
func (e *Engine) Pull(name string, from Position, limit int) (epoch string, pubs []*Publication, more bool, err error) {
	if err := ValidName(name); err != nil {
		return "", nil, false, err
	}
	if limit <= 0 {
		limit = 1000
	}
	t, ok := e.lookup(name)
	if !ok && e.cfg.Held {
		return "", nil, false, fmt.Errorf("pull %s: %w", name, ErrNotHeld)
	}
	if !ok {
		if from.Epoch != e.epoch {
			return "", nil, false, fmt.Errorf("pull %s: epoch %q is not current: %w", name, from.Epoch, ErrGone)
		}
		if from.Seq > 0 {
			return "", nil, false, fmt.Errorf("pull %s: %w", name, errFuture)
		}
		return e.epoch, nil, false, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.released:
		return "", nil, false, fmt.Errorf("pull %s: %w", name, ErrNotHeld)
	case from.Epoch != t.epoch:
		return "", nil, false, fmt.Errorf("pull %s: epoch %q is not current: %w", name, from.Epoch, ErrGone)
	case from.Seq > t.seq:
		return "", nil, false, fmt.Errorf("pull %s: since %d, current %d: %w", name, from.Seq, t.seq, errFuture)
	case !t.hist.holds(from.Seq+1, t.seq):
		return "", nil, false, fmt.Errorf("pull %s: oldest held is %d: %w", name, t.hist.first(), ErrGone)
	}
	to := t.seq
	if to-from.Seq > uint64(limit) {
		to, more = from.Seq+uint64(limit), true
	}
	return t.epoch, t.hist.appendRange(make([]*Publication, 0, to-from.Seq), from.Seq+1, to), more, nil
}
