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
// not queue more. The topic is marked instead, and at its next turn the
// loop continues each of its subscribers of the topic from history, as
// after a gap: what the history still holds is delivered, and a subscriber
// further behind gets reset and the snapshot. Latency so stays within what
// the history holds, and the inbox's memory within its bound.
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
