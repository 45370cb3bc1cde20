package server

import "github.com/tickfan/tickfan/topic"

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
