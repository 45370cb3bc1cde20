package e2e

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/tickfan/tickfan/internal/redistest"
)

// TestRedisTwoNodes: two nodes on one redis-server are one service. A
// client on node A subscribes; a producer publishes on node B over HTTP
// and with the pub command; every publication reaches the subscribers of
// both nodes in order, at the seq and in the epoch its publisher was
// answered with. A topic never published answers s 0 on both nodes with
// one epoch, the one its first publication then carries.
func TestRedisTwoNodes(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	a, b := redisNode(t, r.Addr), redisNode(t, r.Addr)
	eachTransport(t, func(t *testing.T, tr transport) {
		led := newLedger()
		fresh, old := topicFor(tr, "two.fresh"), topicFor(tr, "two.old")
		prod := dialTCP(t, b) // an anonymous producer (--anonymous-pub)
		first := led.publishHTTP(t, b, old, payload("o", 1), true)
		led.publishCmd(t, prod, old, payload("o", 2), false)

		sa, atA := subscribe(t, tr.dial(t, a), fresh, old)
		sb, atB := subscribe(t, tr.dial(t, b), fresh, old)
		if atA[old] != (pos{E: first.E, S: 2}) || atB[old] != atA[old] {
			t.Fatalf("sub %s → %+v on A, %+v on B, want the publishers' epoch %s at s 2 on both", old, atA[old], atB[old], first.E)
		}
		if atA[fresh].S != 0 || atB[fresh] != atA[fresh] {
			t.Fatalf("sub %s (never published) → %+v on A, %+v on B, want s 0 and one epoch on both", fresh, atA[fresh], atB[fresh])
		}

		// The first publication of the fresh topic carries the epoch its
		// subscribers were told; then both topics, both ways of publishing.
		if p := led.publishCmd(t, prod, fresh, payload("f", 1), false); p != (pos{E: atA[fresh].E, S: 1}) {
			t.Fatalf("first pub of %s → %+v, want the epoch of the sub replies %s at s 1", fresh, p, atA[fresh].E)
		}
		want := map[string]pos{}
		for i := 2; i <= 20; i++ {
			for _, name := range []string{fresh, old} {
				if i%2 == 0 {
					want[name] = led.publishHTTP(t, b, name, payload(name, i), i%7 == 0)
				} else {
					want[name] = led.publishCmd(t, prod, name, payload(name, i), i%7 == 0)
				}
			}
		}
		for _, s := range []*subscriber{sa, sb} {
			s.waitAt(t, want)
			s.verify(t, led)
			for name, st := range s.streams {
				if len(st.resets) != 0 {
					t.Fatalf("%s: %s: reset without a reason", s.c.name, st)
				}
				// old: the snapshot at s 1 and s 2 came as the backlog.
				if got := st.seqs(want[name].E); !slices.Equal(got, seqRange(1, want[name].S)) {
					t.Fatalf("%s: %s received seqs %v, want 1..%d", s.c.name, name, got, want[name].S)
				}
			}
		}

		// A pull on node A serves the same history.
		pc := tr.dial(t, a)
		since := pos{E: want[old].E, S: want[old].S - 3}
		res := pc.ok(t, map[string]any{"op": "pull", "t": old, "since": since.since()})
		pubs, _ := res["pubs"].([]any)
		if res["e"] != want[old].E || len(pubs) != 3 {
			t.Fatalf("pull %s since %+v on A → %s, want epoch %s and the 3 after it", old, since, show(res), want[old].E)
		}
		for i, p := range pubs {
			s := since.S + 1 + uint64(i)
			e, _ := led.get(old, pos{E: want[old].E, S: s})
			if err := expectPub(p.(map[string]any), old, s, e.d, e.snap); err != nil {
				t.Fatalf("pull on A: %v", err)
			}
		}
	})
}

// seqRange returns from..to.
func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// TestRedisThreeNodes: subscribers on three nodes, two producers on two
// of them publishing to the same topics at the same time (node B over
// HTTP, node C with a burst of pub commands): Redis gives one order, and
// every subscriber on every node receives that order, seq by seq, each
// publication with the payload its producer was answered for.
func TestRedisThreeNodes(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	nodes := []*node{redisNode(t, r.Addr), redisNode(t, r.Addr), redisNode(t, r.Addr)}
	topics := []string{"three.a", "three.b"}
	led := newLedger()

	var subs []*subscriber
	var epoch map[string]pos
	for i, n := range nodes {
		for _, tr := range transports {
			s, at := subscribe(t, tr.dial(t, n), topics...)
			subs = append(subs, s)
			if epoch == nil {
				epoch = at
			}
			for _, name := range topics {
				if at[name] != epoch[name] || at[name].S != 0 {
					t.Fatalf("node %d %s: sub %s → %+v, want s 0 in the epoch the others were told, %+v", i, tr.name, name, at[name], epoch[name])
				}
			}
		}
	}

	const each = 150
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // node B, over HTTP, one at a time
		defer wg.Done()
		for i := 1; i <= each; i++ {
			name, d, snap := topics[i%2], payload("http", i), i%40 == 0
			p, err := nodes[1].tryPublish(name, d, snap)
			if err == nil {
				err = led.add(name, p, d, snap)
			}
			if err != nil {
				errs <- err
				return
			}
		}
	}()
	prod := dialTCP(t, nodes[2])
	go func() { // node C, a burst of pub commands in one write
		defer wg.Done()
		errs <- pubBurstTo(prod, led, each, func(i int) (string, any, bool) {
			return topics[i%2], payload("pub", i), i%50 == 0
		})
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	want := map[string]pos{}
	for _, name := range topics {
		want[name] = pos{E: epoch[name].E, S: each} // 2×each publications over two topics
	}
	for _, s := range subs {
		s.waitAt(t, want)
		s.verify(t, led)
		for _, name := range topics {
			if got := s.streams[name].seqs(want[name].E); !slices.Equal(got, seqRange(1, each)) {
				t.Fatalf("%s: %s received seqs %v, want 1..%d", s.c.name, name, got, each)
			}
		}
	}
}

// pubBurstTo writes count pub commands (ids 1..count, topic, payload and
// kind from what) on c in one write, reads their replies, which must come
// in id order, and records each in the ledger. It returns the first
// error, and may run on any goroutine.
func pubBurstTo(c *client, led *ledger, count int, what func(i int) (string, any, bool)) error {
	type sent struct {
		name string
		d    any
		snap bool
	}
	cmds := make([]sent, count+1)
	msgs := make([]map[string]any, count)
	for i := 1; i <= count; i++ {
		name, d, snap := what(i)
		cmds[i] = sent{name, d, snap}
		m := map[string]any{"op": "pub", "id": i, "t": name, "d": d}
		if snap {
			m["k"] = "snap"
		}
		msgs[i-1] = m
	}
	werr, err := c.writeBurst(msgs)
	if err != nil {
		return err
	}
	for i := 1; i <= count; i++ {
		m, err := c.recv()
		if err != nil {
			return fmt.Errorf("pub burst: reply %d: %w", i, err)
		}
		if err := checkReply(m, uint64(i)); err != nil {
			return fmt.Errorf("pub burst: %w", err)
		}
		p, err := asPos(m["res"])
		if err != nil {
			return fmt.Errorf("pub burst: reply %s: %w", m, err)
		}
		if err := led.add(cmds[i].name, p, cmds[i].d, cmds[i].snap); err != nil {
			return err
		}
	}
	return <-werr
}

// TestRedisPubBurstOrder: on a Redis node a pub goes to Redis off the
// event loop, yet a producer's burst of 500 pub commands to three topics,
// a ping and a sub among them, all in one write, is answered in command
// order: the ping's reply after the pubs before it, the sub's after them
// too and at the seq of the last pub before it, then the publications its
// subscription brings (after its reply, none repeated, none missed).
// Each topic's seqs grow by one per pub. A subscriber on another node sees
// every publication in that order.
func TestRedisPubBurstOrder(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	a, b := redisNode(t, r.Addr, withJWT), redisNode(t, r.Addr)
	topics := []string{"prod.burst.0", "prod.burst.1", "prod.burst.2"}
	watcher, _ := subscribe(t, dialTCP(t, b), topics...)
	c := producer(t, a)

	const pubs, pingAt, subAt = 500, 250, 375
	type cmd struct {
		op   string
		name string
		d    any
	}
	var cmds []cmd // cmds[i] has id i+1
	for k := range pubs {
		switch k {
		case pingAt:
			cmds = append(cmds, cmd{op: "ping"})
		case subAt:
			cmds = append(cmds, cmd{op: "sub", name: topics[0]})
		}
		cmds = append(cmds, cmd{op: "pub", name: topics[k%3], d: payload("burst", k)})
	}
	msgs := make([]map[string]any, len(cmds))
	for i, cm := range cmds {
		m := map[string]any{"op": cm.op, "id": i + 1}
		switch cm.op {
		case "pub":
			m["t"], m["d"] = cm.name, cm.d
		case "sub":
			m["topics"] = []string{cm.name}
		}
		msgs[i] = m
	}
	werr, err := c.writeBurst(msgs)
	if err != nil {
		t.Fatal(err)
	}

	led := newLedger()
	last := map[string]pos{} // each topic's last pub answered
	var own *stream          // the producer's own subscription, from its sub reply
	var early []msg          // publications before the sub reply
	for id := 1; id <= len(cmds); {
		m := c.next(t)
		if _, isReply := m["id"]; !isReply {
			if own == nil {
				early = append(early, m)
			} else if err := own.handle(m); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := checkReply(m, uint64(id)); err != nil {
			t.Fatalf("replies out of command order: %v", err)
		}
		cm := cmds[id-1]
		res, ok := m["res"].(map[string]any)
		if !ok {
			t.Fatalf("%s id %d → %s, want a result", cm.op, id, m)
		}
		switch cm.op {
		case "ping":
			if len(res) != 0 {
				t.Fatalf("ping → %s, want {}", m)
			}
		case "sub":
			p, err := asPos(res[cm.name], "rec")
			if err != nil {
				t.Fatalf("sub → %s: %v", m, err)
			}
			if p != last[cm.name] {
				t.Fatalf("sub %s after its pubs were answered → %+v, want the last of them, %+v", cm.name, p, last[cm.name])
			}
			own = newStream(cm.name, p)
		case "pub":
			p, err := asPos(res)
			if err != nil {
				t.Fatalf("pub id %d → %s: %v", id, m, err)
			}
			prev := last[cm.name]
			if p.S != prev.S+1 || prev.E != "" && p.E != prev.E {
				t.Fatalf("pub id %d to %s → %+v after %+v: want the next seq in one epoch", id, cm.name, p, prev)
			}
			last[cm.name] = p
			if err := led.add(cm.name, p, cm.d, false); err != nil {
				t.Fatal(err)
			}
		}
		id++
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if len(early) != 0 {
		t.Fatalf("%d publications before the sub's reply, first %s", len(early), early[0])
	}
	rest := map[string]pos{topics[0]: last[topics[0]]}
	(&subscriber{c: c, streams: map[string]*stream{topics[0]: own}}).waitAt(t, rest)
	if err := own.verify(led); err != nil {
		t.Fatal(err)
	}
	watcher.waitAt(t, last)
	watcher.verify(t, led)
}
