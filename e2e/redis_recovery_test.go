package e2e

import (
	"slices"
	"testing"

	"github.com/tickfan/tickfan/internal/redistest"
)

// TestRedisResumeOnAnotherNode: a client's node goes away while the
// publications go on through another node; the client reconnects to that
// other node with its position. With the range still in the history it
// gets rec true and exactly what it missed, then live ones: nothing lost,
// nothing repeated. With the range gone (more published while away than
// --history-size, 20 here) it gets rec false, reset at the latest
// snapshot, the snapshot and the updates after it, then live ones.
func TestRedisResumeOnAnotherNode(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	const history = 20
	b := redisNode(t, r.Addr, historySize(history))
	eachTransport(t, func(t *testing.T, tr transport) {
		a := redisNode(t, r.Addr, historySize(history))
		led := newLedger()
		held, gone := topicFor(tr, "resume.held"), topicFor(tr, "resume.gone")
		s, _ := subscribe(t, tr.dial(t, a), held, gone)
		at := map[string]pos{}
		for i := 1; i <= 3; i++ {
			for _, name := range []string{held, gone} {
				at[name] = led.publishHTTP(t, b, name, payload(name, i), i == 1)
			}
		}
		s.waitAt(t, at)
		s.c.close()
		a.stop(t)

		// Away: 5 more of held, 30 more of gone with a snapshot at s 20.
		var want = map[string]pos{}
		for i := 4; i <= 3+30; i++ {
			if i <= 8 {
				want[held] = led.publishHTTP(t, b, held, payload(held, i), false)
			}
			want[gone] = led.publishHTTP(t, b, gone, payload(gone, i), i == 20)
		}

		c := tr.dial(t, b)
		res := c.sub(t, []string{held, gone}, at)
		if !res[held].Rec || res[held].pos != want[held] {
			t.Fatalf("sub %s since %+v on another node → %+v, want rec true at %+v", held, at[held], res[held], want[held])
		}
		if res[gone].Rec || res[gone].pos != want[gone] {
			t.Fatalf("sub %s since %+v, %d publications later with a history of %d → %+v, want rec false at %+v",
				gone, at[gone], want[gone].S-at[gone].S, history, res[gone], want[gone])
		}
		// The client's streams go on from what it held.
		s2 := &subscriber{c: c, streams: map[string]*stream{held: recovered(held, at[held]), gone: recovered(gone, at[gone])}}
		s2.waitAt(t, want)
		for _, name := range []string{held, gone} {
			want[name] = led.publishHTTP(t, b, name, payload(name, 99), false)
		}
		s2.waitAt(t, want)
		s2.verify(t, led)

		hs := s2.streams[held]
		if got := hs.seqs(want[held].E); len(hs.resets) != 0 || !slices.Equal(got, seqRange(4, want[held].S)) {
			t.Fatalf("%s: after s 3 received %v (resets %v), want exactly 4..%d", held, got, hs.resets, want[held].S)
		}
		gs := s2.streams[gone]
		if !slices.Equal(gs.resets, []pos{{E: want[gone].E, S: 20}}) {
			t.Fatalf("%s: resets %v, want one at the snapshot, %s/20", gone, gs.resets, want[gone].E)
		}
		if got := gs.seqs(want[gone].E); !slices.Equal(got, seqRange(20, want[gone].S)) || !gs.got[0].snap {
			t.Fatalf("%s: after the reset received %v (first a snapshot: %v), want the snapshot at 20, then 21..%d",
				gone, got, len(gs.got) > 0 && gs.got[0].snap, want[gone].S)
		}
	})
}

// TestRedisFlushAll: Redis loses every key mid-stream (FLUSHALL): the
// next publication of each topic starts a new epoch at s 1, and the
// subscribers on both nodes get reset with that epoch at it, then every
// publication after the reset in order. A topic whose first publication
// in the new epoch is a snapshot gives them that snapshot; the other one
// goes on from the reset's s. A new subscriber is told the new epoch.
func TestRedisFlushAll(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	a, b := redisNode(t, r.Addr), redisNode(t, r.Addr)
	led := newLedger()
	snapT, updT := "flush.snap", "flush.upd"
	topics := []string{snapT, updT}
	var subs []*subscriber
	for _, n := range []*node{a, b} {
		for _, tr := range transports {
			s, _ := subscribe(t, tr.dial(t, n), topics...)
			subs = append(subs, s)
		}
	}
	prod := dialTCP(t, b)
	before := map[string]pos{}
	for i := 1; i <= 5; i++ {
		for _, name := range topics {
			before[name] = led.publishCmd(t, prod, name, payload(name, i), i == 2)
		}
	}
	for _, s := range subs {
		s.waitAt(t, before)
	}

	if got := r.Do(t, "FLUSHALL"); got != "OK" {
		t.Fatalf("FLUSHALL: %s", got)
	}
	// The first publication of each topic after the flush: s 1 of a new
	// epoch, a snapshot for one topic, an update for the other. Every
	// subscriber is reset at it before more come, so where it is reset is
	// known: at s 1, then the snapshot or nothing.
	after := map[string]pos{}
	for _, name := range topics {
		p := led.publishCmd(t, prod, name, payload(name+".new", 1), name == snapT)
		if p.S != 1 || p.E == before[name].E {
			t.Fatalf("first pub of %s after FLUSHALL → %+v, want s 1 in an epoch other than %s", name, p, before[name].E)
		}
		after[name] = p
	}
	for _, s := range subs {
		s.waitAt(t, after)
	}
	for i := 2; i <= 6; i++ {
		for _, name := range topics {
			after[name] = led.publishCmd(t, prod, name, payload(name+".new", i), name == snapT && i == 4)
		}
	}
	for _, s := range subs {
		s.waitAt(t, after)
		s.verify(t, led)
		for _, name := range topics {
			st := s.streams[name]
			if !slices.Equal(st.resets, []pos{{E: after[name].E, S: 1}}) {
				t.Fatalf("%s: %s: resets %v, want one, at s 1 of the new epoch %s", s.c.name, name, st.resets, after[name].E)
			}
			from := uint64(2) // the update at s 1 is behind the reset
			if name == snapT {
				from = 1 // the snapshot at s 1 comes after the reset
			}
			if got := st.seqs(after[name].E); !slices.Equal(got, seqRange(from, after[name].S)) {
				t.Fatalf("%s: %s: received %v in the new epoch, want %d..%d", s.c.name, name, got, from, after[name].S)
			}
		}
	}
	for _, n := range []*node{a, b} {
		for _, name := range topics {
			if p := n.current(t, name); p != after[name] {
				t.Fatalf("a new subscriber of %s → %+v, want %+v", name, p, after[name])
			}
		}
	}
}
