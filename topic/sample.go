package topic

// TopicSample is one topic as Engine.Sample saw it.
type TopicSample struct {
	Name string
	// Seq is the topic's current seq.
	Seq uint64
	// Subscribers is how many subscribers this node's loops have of it.
	Subscribers int
	// Published is how many publications it got since the previous
	// Sample visited it (its seq then); Fresh says there was none, so
	// Published counts from seq 0: the topic is new, or Sample is run for
	// the first time.
	Published uint64
	Fresh     bool
}

// Sample calls visit with every topic the engine holds, for the node's
// status page: it takes each topic's lock once, for the time of reading
// three fields, so publications to a topic wait at most that long. It
// keeps in each topic the seq it saw, to count the publications since,
// so one goroutine at a time may call it. Topics whose name is known only
// to subscribers (never published, not held) are not visited. It returns
// how many topics it visited.
func (e *Engine) Sample(visit func(TopicSample)) int {
	n := 0
	e.topics.Range(func(_, v any) bool {
		t := v.(*Topic)
		t.mu.Lock()
		if t.released {
			t.mu.Unlock()
			return true
		}
		ts := TopicSample{Name: t.name, Seq: t.seq, Subscribers: int(t.total), Fresh: !t.sampled}
		if t.seq >= t.mark {
			ts.Published = t.seq - t.mark
		} else { // a new epoch (Held mode) started its seqs again
			ts.Published = t.seq
		}
		t.mark, t.sampled = t.seq, true
		t.mu.Unlock()
		visit(ts)
		n++
		return true
	})
	return n
}
