package e2e

import (
	"testing"
)

// TestSnapshot checks Subscribe and recovery step 1: the reply with the
// current s, then the latest snapshot at s0, then s0+1..s, then live ones.
func TestSnapshot(t *testing.T) {
	t.Parallel()
	n := start(t)
	eachTransport(t, func(t *testing.T, tr transport) {
		a := topicFor(tr, "snap")
		producer := tr.dial(t, n)
		// s1 snap, s2..3 updates, s4 snap (HTTP), s5 (pub), s6 (HTTP).
		producer.pub(t, a, payload("s", 1), true)
		n.publish(t, a, payload("s", 2), false)
		producer.pub(t, a, payload("s", 3), false)
		n.publish(t, a, payload("s", 4), true)
		producer.pub(t, a, payload("s", 5), false)
		last := n.publish(t, a, payload("s", 6), false)

		c := tr.dial(t, n)
		r := c.sub1(t, a, nil)
		if r.pos != last || r.Rec {
			t.Fatalf("sub → %+v, want %+v rec false", r, last)
		}
		c.nextPub(t, a, 4, payload("s", 4), true)
		c.nextPub(t, a, 5, payload("s", 5), false)
		c.nextPub(t, a, 6, payload("s", 6), false)
		n.publish(t, a, payload("s", 7), false)
		c.nextPub(t, a, 7, payload("s", 7), false)

		// A snapshot that is the latest publication: just it.
		b := topicFor(tr, "snap.last")
		n.publish(t, b, payload("b", 1), false)
		bs := n.publish(t, b, payload("b", 2), true)
		c2 := tr.dial(t, n)
		if r := c2.sub1(t, b, nil); r.pos != bs {
			t.Fatalf("sub %s → %+v, want %+v", b, r, bs)
		}
		c2.nextPub(t, b, 2, payload("b", 2), true)
		n.publish(t, b, payload("b", 3), false)
		c2.nextPub(t, b, 3, payload("b", 3), false)

		// Two topics in one sub: one reply, then each topic's backlog in order.
		c3 := tr.dial(t, n)
		res := c3.sub(t, []string{a, b}, nil)
		if res[a].S != 7 || res[b].S != 3 {
			t.Fatalf("sub [%s %s] → %+v, want s 7 and 3", a, b, res)
		}
		want := map[string][]uint64{a: {4, 5, 6, 7}, b: {2, 3}}
		for range 6 {
			m := c3.next(t)
			p, err := asPub(m)
			if err != nil {
				t.Fatal(err)
			}
			seqs := want[p.T]
			if len(seqs) == 0 || p.S != seqs[0] {
				t.Fatalf("backlog of two topics: got %s, want next %s at %v", m, p.T, seqs)
			}
			tag := "s"
			if p.T == b {
				tag = "b"
			}
			if err := expectPub(m, p.T, p.S, payload(tag, int(p.S)), p.S == 4 && p.T == a || p.S == 2 && p.T == b); err != nil {
				t.Fatal(err)
			}
			want[p.T] = seqs[1:]
		}
	})
}

// TestRecovery checks Subscribe and recovery steps 2 and 3.
func TestRecovery(t *testing.T) {
	t.Parallel()
	n := start(t, historySize(5))
	eachTransport(t, func(t *testing.T, tr transport) {
		t.Run("held", func(t *testing.T) {
			a := topicFor(tr, "rec.held")
			c := tr.dial(t, n)
			c.sub1(t, a, nil)
			var held pos
			for i := 1; i <= 3; i++ {
				held = n.publish(t, a, payload("h", i), false)
				c.nextPub(t, a, uint64(i), payload("h", i), false)
			}
			c.close()
			for i := 4; i <= 6; i++ {
				n.publish(t, a, payload("h", i), false)
			}
			// A new connection, in another transport too, continues at 4.
			var again []*client
			for _, other := range transports {
				c := other.dial(t, n)
				r := c.sub1(t, a, &held)
				if !r.Rec || r.pos != (pos{E: held.E, S: 6}) {
					t.Fatalf("%s: sub since %+v → %+v, want rec true at s 6", other.name, held, r)
				}
				for i := 4; i <= 6; i++ {
					c.nextPub(t, a, uint64(i), payload("h", i), false)
				}
				again = append(again, c)
			}
			n.publish(t, a, payload("h", 7), false)
			for _, c := range again {
				c.nextPub(t, a, 7, payload("h", 7), false) // live, nothing repeated
			}
		})
		t.Run("held on the same connection", func(t *testing.T) {
			a := topicFor(tr, "rec.same")
			c := tr.dial(t, n)
			c.sub1(t, a, nil)
			held := n.publish(t, a, payload("h", 1), false)
			c.nextPub(t, a, 1, payload("h", 1), false)
			c.ok(t, map[string]any{"op": "unsub", "topics": []string{a}})
			n.publish(t, a, payload("h", 2), false)
			n.publish(t, a, payload("h", 3), false)
			r := c.sub1(t, a, &held)
			if !r.Rec || r.S != 3 {
				t.Fatalf("sub since %+v → %+v, want rec true at s 3", held, r)
			}
			c.nextPub(t, a, 2, payload("h", 2), false)
			c.nextPub(t, a, 3, payload("h", 3), false)
			n.publish(t, a, payload("h", 4), false)
			c.nextPub(t, a, 4, payload("h", 4), false)
		})
		t.Run("since current", func(t *testing.T) {
			a := topicFor(tr, "rec.current")
			n.publish(t, a, payload("c", 1), false)
			cur := n.publish(t, a, payload("c", 2), true)
			c := tr.dial(t, n)
			r := c.sub1(t, a, &cur)
			if !r.Rec || r.pos != cur {
				t.Fatalf("sub since current %+v → %+v, want rec true at it", cur, r)
			}
			// Nothing missed, so nothing (not even the snapshot) before live.
			n.publish(t, a, payload("c", 3), false)
			c.nextPub(t, a, 3, payload("c", 3), false)
		})
		// A since the history cannot continue from: the reply says rec
		// false at the topic's last position, a reset names the latest
		// snapshot (or, without one, the last publication), the snapshot
		// and what follows it come, then live ones.
		for _, rc := range []struct {
			name, topic, tag string
			n, snap          int    // publications before the sub; which is the snapshot (0: none)
			what             string // the since, for the failure message
			since            func(first, last pos) pos
		}{
			{"wrong epoch with snapshot", "rec.epoch.snap", "e", 3, 2, "a wrong epoch",
				func(_, last pos) pos { return pos{E: "not-" + last.E, S: 2} }},
			{"wrong epoch without snapshot", "rec.epoch.nosnap", "e", 2, 0, "a wrong epoch",
				func(_, last pos) pos { return pos{E: "not-" + last.E, S: 1} }},
			{"evicted with snapshot", "rec.evicted.snap", "v", 10, 8, "s 2 of 10, history 5",
				func(first, _ pos) pos { return pos{E: first.E, S: 2} }},
			{"evicted without snapshot", "rec.evicted.nosnap", "v", 10, 0, "s 2 of 10, history 5",
				func(first, _ pos) pos { return pos{E: first.E, S: 2} }},
			{"ahead of the topic", "rec.ahead", "a", 1, 0, "s 5 of 1",
				func(_, last pos) pos { return pos{E: last.E, S: 5} }},
		} {
			t.Run(rc.name, func(t *testing.T) {
				a := topicFor(tr, rc.topic)
				var first, last pos
				for i := 1; i <= rc.n; i++ {
					last = n.publish(t, a, payload(rc.tag, i), i == rc.snap)
					if i == 1 {
						first = last
					}
				}
				c := tr.dial(t, n)
				since := rc.since(first, last)
				r := c.sub1(t, a, &since)
				if r.Rec || r.pos != last {
					t.Fatalf("sub since %s → %+v, want rec false at %+v", rc.what, r, last)
				}
				if rc.snap == 0 {
					c.nextReset(t, a, last.E, uint64(rc.n))
				} else {
					c.nextReset(t, a, last.E, uint64(rc.snap))
					for i := rc.snap; i <= rc.n; i++ {
						c.nextPub(t, a, uint64(i), payload(rc.tag, i), i == rc.snap)
					}
				}
				n.publish(t, a, payload(rc.tag, rc.n+1), false)
				c.nextPub(t, a, uint64(rc.n+1), payload(rc.tag, rc.n+1), false)
			})
		}
	})
}
