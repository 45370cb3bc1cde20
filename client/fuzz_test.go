package client

import (
	"bytes"
	"fmt"
	"testing"
)

// FuzzParse feeds arbitrary server bytes through what reads them: the
// frame parsers of each transport, Decode and ScanPublication. None may
// panic, and where both ScanPublication and Decode read a publication
// they must agree on it.
func FuzzParse(f *testing.F) {
	f.Add([]byte("\x81\x1a{\"t\":\"a.b\",\"s\":3,\"d\":[1,2]}"), false)
	f.Add([]byte("\x81\x2b{\"t\":\"a\",\"s\":1,\"d\":{\"x\":1},\"k\":\"snap\"}"), false)
	f.Add([]byte("\x81\x21{\"op\":\"reset\",\"t\":\"a\",\"e\":\"q\",\"s\":9}"), false)
	f.Add([]byte("\x82\x0c\x83\xa1t\xa1a\xa1s\x05\xa1d\xc0"), true)
	f.Add([]byte("\x00\x00\x00\x0c\x83\xa1t\xa1a\xa1s\x05\xa1d\x01"), true)
	f.Add([]byte("\x88\x02\x0f\xa6"), false)
	f.Fuzz(func(t *testing.T, b []byte, mp bool) {
		for _, p := range []Proto{WSJSON, WSMsgpack, TCP} {
			rest := b
			for len(rest) > 0 {
				fr, n, err := p.ParseFrame(rest)
				if err != nil || n == 0 {
					break
				}
				if n > len(rest) {
					t.Fatalf("%s: frame of %d bytes in %d", p, n, len(rest))
				}
				rest = rest[n:]
				checkBody(t, fr.Payload, p.Msgpack())
			}
		}
		checkBody(t, b, mp)
	})
}

// checkBody decodes body both ways and compares.
func checkBody(t *testing.T, body []byte, mp bool) {
	m, err := Decode(body, mp)
	sp, ok := ScanPublication(body, mp)
	if err != nil || !ok || m.Kind != KindPublication {
		return
	}
	if string(sp.Topic) != m.Topic || sp.Seq != m.Seq || sp.Snap != m.Snap || !bytes.Equal(sp.Data, m.Data) {
		t.Fatalf("%q (msgpack %v): ScanPublication read t %q s %d snap %v d %q, Decode t %q s %d snap %v d %q",
			body, mp, sp.Topic, sp.Seq, sp.Snap, sp.Data, m.Topic, m.Seq, m.Snap, m.Data)
	}
}

// FuzzTopicState plays an arbitrary server, one that may repeat, skip,
// reorder, reset and lag as it likes, against a topic's state, and checks
// what the user is given: within one start (Subscribed, Reset, Recovered)
// publications come in seq order without a hole or a repeat (the first
// after a Subscribed or Reset being a snapshot or after its seq), whatever
// the server did; a hole it cannot fill is resubscribed, never passed on.
func FuzzTopicState(f *testing.F) {
	f.Add([]byte{0, 1, 0, 1, 0, 3, 1, 7, 0, 0x87, 0, 1}, false)
	f.Add([]byte{2, 0, 0, 1, 3, 1, 0, 1, 4, 9, 0, 0x81}, false)
	f.Add([]byte{0, 2, 0, 3, 0, 0, 3, 0, 0, 1}, true)
	f.Fuzz(func(t *testing.T, ops []byte, conflated bool) {
		s := &Subscription{}
		st := &topicState{conflated: conflated}
		u := userView{t: t, conflated: conflated}
		epochs := 0
		newEpoch := func() string { epochs++; return fmt.Sprintf("e%d", epochs) }
		deliver := func(evs []Event) {
			for _, ev := range evs {
				u.see(ev)
			}
		}
		// resubscribe answers a sub with since as a server may: rec true
		// (continue) or false (a reset follows), from where it stands.
		resubscribe := func(arg byte, gap bool) {
			p, withSince := st.position()
			r := SubResult{E: st.epoch, S: st.last + uint64(arg%5), Rec: withSince && arg&0x10 != 0}
			if !withSince {
				r.E = newEpoch()
			}
			deliver(st.subscribed("x", r, p, withSince, gap, s))
		}
		deliver(st.subscribed("x", SubResult{E: newEpoch()}, Position{}, false, false, s))
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i]%5, ops[i+1]
			switch op {
			case 0: // a publication near the last seq: a repeat, the next one, or after a hole
				seq := st.last + uint64(arg%4)
				if seq > 0 {
					seq--
				}
				evs, resub := st.publication(Message{Kind: KindPublication, Topic: "x", Seq: seq, Snap: arg&0x80 != 0}, s)
				deliver(evs)
				if resub {
					resubscribe(arg>>2, true)
				}
			case 1: // a reset into a new epoch
				deliver(st.reset(Message{Kind: KindReset, Topic: "x", Epoch: newEpoch(), Seq: st.last + uint64(arg%8)}, s))
			case 2:
				deliver(st.lag(Message{Kind: KindLag, Topic: "x", Seq: st.last}, s))
			case 3: // the connection was made again
				resubscribe(arg, false)
			case 4: // a sub without since (a new Subscription's first)
				deliver(st.subscribed("x", SubResult{E: newEpoch(), S: uint64(arg % 8)}, Position{}, false, false, s))
			}
		}
	})
}

// userView checks the events a user is given of one topic.
type userView struct {
	t         *testing.T
	conflated bool
	epoch     string
	base      uint64 // where the current start stands
	fresh     bool   // the next publication starts anew: a snapshot, or after base
	last      uint64 // the last publication given, when !fresh
	started   bool
}

func (u *userView) see(ev Event) {
	switch e := ev.(type) {
	case Subscribed:
		u.epoch, u.base, u.fresh, u.started = e.Epoch, e.Seq, true, true
	case Reset:
		u.epoch, u.base, u.fresh, u.started = e.Epoch, e.Seq, true, true
	case Recovered:
		if !u.started {
			u.t.Fatalf("Recovered %+v before the topic started", e)
		}
		if e.Epoch != u.epoch || !u.fresh && e.From != u.last {
			u.t.Fatalf("Recovered %+v, but the user holds epoch %s up to %d (fresh %v)", e, u.epoch, u.last, u.fresh)
		}
		u.base, u.last, u.fresh = e.From, e.From, false
	case Pub:
		if !u.started {
			u.t.Fatalf("publication %d before the topic started", e.Seq)
		}
		if e.Epoch != u.epoch {
			u.t.Fatalf("publication %d of epoch %s, the topic is in %s", e.Seq, e.Epoch, u.epoch)
		}
		switch {
		case u.fresh && (e.Snap || e.Seq > u.base):
		case u.fresh:
			u.t.Fatalf("publication %d after a start at %d is neither a snapshot nor after it", e.Seq, u.base)
		case u.conflated && e.Seq > u.last:
		case e.Seq != u.last+1:
			u.t.Fatalf("publication %d after %d: a hole or a repeat given to the user", e.Seq, u.last)
		}
		u.last, u.fresh = e.Seq, false
	}
}
