package server

import "github.com/tickfan/tickfan/topic"

// queue is a bounded queue from many goroutines to one, in the manner of
// nats-server's ipQueue: producers append under the owner's lock, the
// consumer takes the whole batch at once and gives its array back for the
// next batch, so a steady flow allocates nothing.
type queue[T any] struct {
	items []T
	spare []T
	max   int // the most items queued; 0: no bound of its own
}

// push appends v and reports whether there was room. The owner's lock held.
func (q *queue[T]) push(v T) bool {
	if q.max > 0 && len(q.items) >= q.max {
		return false
	}
	q.items = append(q.items, v)
	return true
}

// take hands the consumer what is queued. The owner's lock held.
func (q *queue[T]) take() []T {
	b := q.items
	q.items, q.spare = q.spare, nil
	return b
}

// recycle gives back a batch the consumer is done with. The owner's lock
// held, or the consumer's goroutine while no other batch is taken.
func (q *queue[T]) recycle(b []T) {
	clear(b)
	if cap(b) <= keptQueueCap {
		q.spare = b[:0]
	}
}

// keptQueueCap is the largest array a queue keeps for its next batch; a
// burst's larger one is given back.
const keptQueueCap = 4096

// Enqueue hands a publication to the loop. Any goroutine may call it; the
// topic engine does, with the topic's lock held, in seq order per topic. The
// loop is woken once per batch, not once per publication.
//
// The inbox is bounded (inboxBound): a loop that falls so far behind does
// not queue more. The topic is marked instead, and at its next turn its
// subscribers get lag and continue from history: what the history still
// holds, or reset and the snapshot (see deliverPending).
func (l *loop) Enqueue(p *topic.Publication) {
	l.mu.Lock()
	if !l.inbox.push(p) {
		if l.overflow == nil {
			l.overflow = make(map[string]struct{})
		}
		l.overflow[p.Topic] = struct{}{}
		l.overflowed++
	}
	l.scheduleLocked()
}

// inboxBound is the most publications a loop's inbox holds: four times a
// topic's history, and at least 16384 (128 KiB of pointers to publications
// the history holds anyway), so that a burst on many topics or a long turn
// does not overflow it.
func inboxBound(historySize int) int { return max(4*historySize, 16384) }

// expire hands a connection whose deadline timer fired to the loop. The
// wheel's goroutine calls it. Bounded by the loop's connections: a
// connection's one timer fires once until the loop re-arms it.
func (l *loop) expire(c *conn) {
	l.mu.Lock()
	l.expired.push(c)
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
// Any goroutine may call it; work done off the loop (slow token checks,
// the std engine's messages) hands its result back so. Bounded by the
// loop's connections: each poster waits for its task, or has one token
// check in flight per connection.
func (l *loop) Post(fn func()) {
	l.mu.Lock()
	l.tasks.push(fn)
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

// Leave implements reactor.Loop: it runs what was scheduled and writes
// what the input caused (flush waits for it).
func (l *loop) Leave() {
	l.busy.Store(false)
	l.RunPending()
	l.flush()
	l.stageDone()
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

// deliverPending delivers the publications taken from the inbox, after
// those an earlier turn left, and reports how many deliveries it queued
// and whether publications are left for another turn. A turn visits at
// most turnVisits subscribers, so that the engine reads its sockets (a
// producer's publications among them) between turns however far behind
// the fan-out is.
//
// When it is behind, it decides rather than queues: publications pending
// beyond the inbox's bound, and any older than the topic's history holds
// (its newest taken seq less --history-size), are passed over, and the
// topic's subscribers get lag and continue from history once their outbox
// has drained (reset and the snapshot when history no longer holds where
// they are), as a slow client's do. Latency so stays within what the
// history holds, and memory within the bound.
func (l *loop) deliverPending(batch []*topic.Publication) (n uint64, more bool) {
	switch {
	case l.pendingAt == len(l.pending):
		l.inbox.recycle(l.pending)
		l.pending, l.pendingAt = batch, 0
	case len(batch) > 0:
		k := copy(l.pending, l.pending[l.pendingAt:])
		clear(l.pending[k:])
		l.pending, l.pendingAt = append(l.pending[:k], batch...), 0
		l.inbox.recycle(batch)
	}
	if over := len(l.pending) - l.pendingAt - l.inbox.max; over > 0 {
		for _, p := range l.pending[l.pendingAt : l.pendingAt+over] {
			l.lagTopic(p.Topic)
		}
		clear(l.pending[l.pendingAt : l.pendingAt+over])
		l.pendingAt += over
		l.skipped += uint64(over)
	}
	// With fewer publications pending than a topic's history holds, none
	// of them can be older than it: the newest of each topic is looked
	// up only when more are pending.
	hist := uint64(l.srv.cfg.HistorySize)
	deep := len(l.pending)-l.pendingAt >= int(hist)
	if deep {
		for _, p := range l.pending[l.pendingAt:] {
			if lt := l.topics[p.Topic]; lt != nil && (p.Epoch != lt.epoch || p.Seq > lt.newest) {
				lt.epoch, lt.newest = p.Epoch, p.Seq
			}
		}
	}
	visits, budget := 0, max(l.turnVisits, 256*int(l.open.Load()))
	for l.pendingAt < len(l.pending) && visits < budget {
		p := l.pending[l.pendingAt]
		l.pending[l.pendingAt] = nil
		l.pendingAt++
		lt := l.topics[p.Topic]
		switch {
		case lt == nil:
		case deep && p.Epoch == lt.epoch && lt.newest-p.Seq >= hist:
			l.lagTopic(p.Topic) // gone from history already: do not send it late
			l.skipped++
		default:
			l.stageAt(stDeliver)
			l.cur, l.curFrames = p, [len(l.curFrames)][]byte{}
			for _, s := range lt.subs {
				if s.c.deliver(s, p) {
					n++
				}
			}
			visits += len(lt.subs)
		}
	}
	l.cur, l.curFrames = nil, [len(l.curFrames)][]byte{}
	if l.pendingAt < len(l.pending) {
		return n, true
	}
	l.inbox.recycle(l.pending)
	l.pending, l.pendingAt = nil, 0
	return n, false
}

// turnVisits is the least number of subscribers a turn visits before it
// leaves the rest of its publications for the next (at least 256 per open
// connection, so that each write carries a few hundred frames).
const turnVisits = 1 << 18

// again schedules another turn for what this one left. Loop goroutine,
// outside Enter and Leave (a turn runs after Leave cleared busy), so the
// wake is not skipped.
func (l *loop) again() {
	l.mu.Lock()
	l.scheduleLocked()
}
