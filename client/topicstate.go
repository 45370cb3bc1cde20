package client

// topicState is where one topic of a Subscription stands, across its
// connections; it decides what each message of the topic means for the
// user (PROTOCOL.md, Server to client and Subscribe and recovery). It
// belongs to the connection goroutine.
type topicState struct {
	conflated bool // s only increases: a jump is no hole

	epoch string
	last  uint64 // the seq of the last publication delivered, or where the topic starts
	held  bool   // epoch and last are known

	// fresh: the next publication starts the topic anew (after a sub
	// without since, or a reset): a snapshot, or an update after last.
	// afterReset: fresh because of a reset (any update after last
	// follows it), not a sub reply (last+1 follows it).
	fresh, afterReset bool
	delivered         bool // a publication was ever delivered to the user
	pending           bool // a sub awaits its reply: what comes of the topic until then is dropped
	awaitReset        bool // the server answered rec false: a reset comes next
	lagging           bool // the server sent lag: it resumes by itself
}

// position is the since of the next sub, if the topic has one. A topic
// started afresh and still waiting for its snapshot has none (unless it
// stands at 0, where there is nothing to miss): a since there would skip
// the snapshot the user was told to expect.
func (st *topicState) position() (Position, bool) {
	if !st.held || st.fresh && st.last > 0 {
		return Position{}, false
	}
	return Position{E: st.epoch, S: st.last}, true
}

// subscribed applies the sub reply r; since is what the sub asked to
// continue from, when withSince.
func (st *topicState) subscribed(t string, r SubResult, since Position, withSince, gap bool, s *Subscription) []Event {
	st.pending, st.lagging = false, false
	switch {
	case withSince && r.Rec:
		st.epoch, st.last, st.held = since.E, since.S, true
		st.fresh, st.awaitReset = false, false
		if gap {
			s.stats.gaps.Add(1)
		} else {
			s.stats.recovered.Add(1)
		}
		return []Event{Recovered{Topic: t, Epoch: since.E, From: since.S, Missed: r.S - min(r.S, since.S), Gap: gap}}
	case withSince:
		// rec false: the server sends a reset next, which says where.
		st.awaitReset = true
		return nil
	}
	st.epoch, st.last, st.held = r.E, r.S, true
	st.fresh, st.afterReset, st.awaitReset = true, false, false
	if st.delivered {
		// The user holds state of the topic, and the server starts it
		// anew without saying how it relates: as good as a reset.
		s.stats.resets.Add(1)
		return []Event{Reset{Topic: t, Epoch: r.E, Seq: r.S}}
	}
	return []Event{Subscribed{Topic: t, Epoch: r.E, Seq: r.S}}
}

// reset applies {"op":"reset"}.
func (st *topicState) reset(m Message, s *Subscription) []Event {
	st.epoch, st.last, st.held = m.Epoch, m.Seq, true
	st.fresh, st.afterReset = true, true
	st.awaitReset, st.lagging = false, false
	s.stats.resets.Add(1)
	return []Event{Reset{Topic: m.Topic, Epoch: m.Epoch, Seq: m.Seq}}
}

// lag applies {"op":"lag"}.
func (st *topicState) lag(m Message, s *Subscription) []Event {
	st.lagging = true
	s.stats.lags.Add(1)
	return []Event{Lag{Topic: m.Topic, Seq: m.Seq}}
}

// publication checks a publication against the topic's continuity: it
// returns the events to deliver, or resub when a hole was found before it
// (the topic must be subscribed again from st.last). A publication
// already delivered is dropped and counted.
func (st *topicState) publication(m Message, s *Subscription) (evs []Event, resub bool) {
	ok := false
	switch {
	case st.awaitReset:
		// A reset was promised first; continuity is unknown.
		return nil, true
	case st.fresh && m.Snap:
		ok = true
	case st.fresh && st.afterReset:
		ok = m.Seq > st.last
	case m.Seq == st.last+1:
		ok = true
	case st.conflated && m.Seq > st.last:
		ok = true
	case m.Seq > st.last:
		return nil, true
	}
	if !ok {
		s.stats.dups.Add(1)
		return nil, false
	}
	if st.lagging {
		st.lagging = false
		evs = append(evs, Resumed{Topic: m.Topic, Seq: st.last})
	}
	st.last, st.fresh, st.delivered = m.Seq, false, true
	return append(evs, Pub{Topic: m.Topic, Epoch: st.epoch, Seq: m.Seq, Data: m.Data, Snap: m.Snap, mp: m.mp}), false
}
