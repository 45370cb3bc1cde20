package e2e

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/tickfan/tickfan/server"
)

// topicFor names a topic of one subtest, so subtests can share a server.
func topicFor(tr transport, name string) string { return tr.name + "." + name }

func TestPing(t *testing.T) {
	t.Parallel()
	n := start(t)
	eachTransport(t, func(t *testing.T, tr transport) {
		c := tr.dial(t, n)
		for _, id := range []uint64{0, 7, 1<<53 + 1, 1<<63 + 5} {
			c.mustSend(t, map[string]any{"op": "ping", "id": id})
			m := c.next(t)
			want := map[string]any{"id": normalize(id), "res": map[string]any{}}
			if !reflect.DeepEqual(map[string]any(m), want) {
				t.Fatalf("ping id %d → %s, want %s", id, m, show(want))
			}
		}
		// Commands are answered in the order sent.
		for id := uint64(100); id < 110; id++ {
			c.mustSend(t, map[string]any{"op": "ping", "id": id})
		}
		for id := uint64(100); id < 110; id++ {
			if err := checkReply(c.next(t), id); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestCommandErrors(t *testing.T) {
	t.Parallel()
	n := start(t)
	check := healthy(t, n) // a rejection must cost a healthy client nothing
	eachTransport(t, func(t *testing.T, tr transport) {
		c := tr.dial(t, n)
		cases := []struct {
			name string
			cmd  map[string]any
			code int
		}{
			{"unknown op", map[string]any{"op": "subscribe", "topics": []string{"a"}}, 404},
			{"unknown op 2", map[string]any{"op": "nope"}, 404},
			{"missing op", map[string]any{"topics": []string{"a"}}, 400},
			{"missing op, id only", map[string]any{}, 400},
			{"auth without jwt configured", map[string]any{"op": "auth", "token": "eyJhbGciOiJIUzI1NiJ9.e30.x"}, 401},
			{"refresh without jwt configured", map[string]any{"op": "refresh", "token": "eyJhbGciOiJIUzI1NiJ9.e30.x"}, 401},
		}
		for _, tc := range cases {
			c.fail(t, tc.cmd, tc.code)
		}
		c.alive(t)
	})
	check()
}

// undecodable returns, per transport, bodies that cannot be decoded or are
// not a map.
func undecodable(tr transport) map[string][]byte {
	if tr.name == "ws-json" {
		return map[string][]byte{
			"not json":       []byte("not json at all"),
			"truncated map":  []byte(`{"op":"ping","id":5`),
			"list":           []byte(`[{"op":"ping","id":5}]`),
			"string":         []byte(`"ping"`),
			"number":         []byte(`42`),
			"trailing bytes": []byte(`{"op":"ping","id":5} x`),
		}
	}
	list, _ := msgpack.Marshal([]any{map[string]any{"op": "ping", "id": 5}})
	str, _ := msgpack.Marshal("ping")
	num, _ := msgpack.Marshal(42)
	full, _ := msgpack.Marshal(map[string]any{"op": "ping", "id": 5})
	return map[string][]byte{
		"never-used byte": {0xc1},
		"truncated map":   full[:len(full)-1],
		"list":            list,
		"string":          str,
		"number":          num,
	}
}

func TestUndecodableMessage(t *testing.T) {
	t.Parallel()
	n := start(t)
	check := healthy(t, n) // a rejection must cost a healthy client nothing
	eachTransport(t, func(t *testing.T, tr transport) {
		c := tr.dial(t, n)
		for name, body := range undecodable(tr) {
			c.mustSendRaw(t, body)
			m := c.next(t)
			if !hasKeys(m, "err") {
				t.Fatalf("%s %q → %s, want exactly {\"err\":{\"code\":400,..}} without id", name, body, m)
			}
			if err := checkErr(m, 400); err != nil {
				t.Fatalf("%s %q → %v", name, body, err)
			}
			c.alive(t) // the connection stays
		}
	})
	check()
}

func TestTCPBadLengthCloses(t *testing.T) {
	t.Parallel()
	n := start(t)
	check := healthy(t, n) // a rejection must cost a healthy client nothing
	cases := map[string][]byte{
		"zero length":      {0, 0, 0, 0},
		"over --max-frame": {0, 0x10, 0, 1}, // 1 MiB + 1, no body follows
		"huge":             {0xff, 0xff, 0xff, 0xff},
	}
	for name, prefix := range cases {
		t.Run(name, func(t *testing.T) {
			c := dialTCP(t, n)
			c.alive(t)
			tw := c.w.(*tcpWire)
			if _, err := tw.c.Write(prefix); err != nil {
				t.Fatal(err)
			}
			// Only an {"op":"close"} may come before the connection closes.
			for {
				m, err := c.recv()
				if err != nil {
					if !isClosed(err) {
						t.Fatalf("length prefix % x: want the connection closed, got %v", prefix, err)
					}
					return
				}
				if err := checkOpClose(m, 4004); err != nil {
					t.Fatalf("length prefix % x: %v", prefix, err)
				}
			}
		})
	}
	check()
}

// checkOpClose checks m is exactly {"op":"close","code":code,"reason":".."}.
func checkOpClose(m msg, code int) error {
	if !hasKeys(m, "op", "code", "reason") || m["op"] != "close" {
		return fmt.Errorf("got %s, want {\"op\":\"close\",\"code\":%d,\"reason\":..}", m, code)
	}
	if c, _ := asUint(m["code"]); c != uint64(code) {
		return fmt.Errorf("got %s, want close code %d", m, code)
	}
	if _, ok := m["reason"].(string); !ok {
		return fmt.Errorf("%s: reason is not a string", m)
	}
	return nil
}

func TestSub(t *testing.T) {
	t.Parallel()
	n := start(t)
	eachTransport(t, func(t *testing.T, tr transport) {
		c := tr.dial(t, n)
		a, b := topicFor(tr, "sub.a"), topicFor(tr, "sub.b")
		res := c.sub(t, []string{a, b}, nil)
		for name, r := range res {
			if r.S != 0 || r.Rec {
				t.Fatalf("sub of never-published %s → %+v, want s 0 and rec false", name, r)
			}
		}
		// The epoch given for a never-published topic is the one its first
		// publication carries, over HTTP and over the pub command.
		p := n.publish(t, a, payload("a", 1), false)
		if p != (pos{E: res[a].E, S: 1}) {
			t.Fatalf("first publication of %s → %+v, want e %q (the sub reply's) and s 1", a, p, res[a].E)
		}
		c.nextPub(t, a, 1, payload("a", 1), false)
		other := dialTCP(t, n)
		p = other.pub(t, b, payload("b", 1), false)
		if p != (pos{E: res[b].E, S: 1}) {
			t.Fatalf("first pub of %s → %+v, want e %q (the sub reply's) and s 1", b, p, res[b].E)
		}
		c.nextPub(t, b, 1, payload("b", 1), false)

		// Without snapshots a new subscriber gets only live updates after s.
		for i := 2; i <= 3; i++ {
			n.publish(t, a, payload("a", i), false)
			c.nextPub(t, a, uint64(i), payload("a", i), false)
		}
		late := tr.dial(t, n)
		r := late.sub1(t, a, nil)
		if r.pos != (pos{E: res[a].E, S: 3}) || r.Rec {
			t.Fatalf("sub of %s after 3 publications → %+v, want e %q s 3 rec false", a, r, res[a].E)
		}
		n.publish(t, a, payload("a", 4), false)
		late.nextPub(t, a, 4, payload("a", 4), false)
		c.nextPub(t, a, 4, payload("a", 4), false)
	})
}

func TestUnsub(t *testing.T) {
	t.Parallel()
	n := start(t)
	eachTransport(t, func(t *testing.T, tr transport) {
		c := tr.dial(t, n)
		a := topicFor(tr, "unsub")
		c.sub1(t, a, nil)
		n.publish(t, a, payload("a", 1), false)
		c.nextPub(t, a, 1, payload("a", 1), false)
		if res := c.ok(t, map[string]any{"op": "unsub", "topics": []string{a}}); len(res) != 0 {
			t.Fatalf("unsub → res %s, want {}", show(res))
		}
		// Unsubscribing a topic not held is fine too.
		if res := c.ok(t, map[string]any{"op": "unsub", "topics": []string{topicFor(tr, "never")}}); len(res) != 0 {
			t.Fatalf("unsub of a topic not held → res %s, want {}", show(res))
		}
		n.publish(t, a, payload("a", 2), false)
		n.publish(t, a, payload("a", 3), false)
		// Not held any more: sub again is no 409, and nothing of 2..3 comes.
		if r := c.sub1(t, a, nil); r.S != 3 {
			t.Fatalf("sub after unsub → %+v, want s 3", r)
		}
		n.publish(t, a, payload("a", 4), false)
		c.nextPub(t, a, 4, payload("a", 4), false)
	})
}

func TestSubRefused(t *testing.T) {
	t.Parallel()
	n := start(t)
	check := healthy(t, n) // a rejection must cost a healthy client nothing
	eachTransport(t, func(t *testing.T, tr transport) {
		t.Run("already held", func(t *testing.T) {
			c := tr.dial(t, n)
			held, fresh := topicFor(tr, "held"), topicFor(tr, "fresh")
			r := c.sub1(t, held, nil)
			c.fail(t, map[string]any{"op": "sub", "topics": []string{held}}, 409)
			c.fail(t, map[string]any{"op": "sub", "topics": []string{fresh, held}}, 409)
			expectNotSubscribed(t, n, c, fresh)
			// held is still held once.
			p := n.publish(t, held, payload("h", 1), false)
			c.nextPub(t, held, 1, payload("h", 1), false)
			if p.E != r.E {
				t.Fatalf("epoch moved: sub said %q, publish %q", r.E, p.E)
			}
			// With since, a held topic may be subscribed again.
			again := c.sub1(t, held, &p)
			if !again.Rec || again.pos != p {
				t.Fatalf("sub of held %s with since %+v → %+v, want rec true at %+v", held, p, again, p)
			}
			n.publish(t, held, payload("h", 2), false)
			c.nextPub(t, held, 2, payload("h", 2), false)
		})
		t.Run("invalid names", func(t *testing.T) {
			c := tr.dial(t, n)
			for _, bad := range []string{"", "has space", "slash/x", "star.*", "gt.>", "ünï", "tab\tx", strings.Repeat("x", 201)} {
				c.fail(t, map[string]any{"op": "sub", "topics": []string{bad}}, 400)
			}
			good := topicFor(tr, "good")
			c.fail(t, map[string]any{"op": "sub", "topics": []string{good, "bad name"}}, 400)
			expectNotSubscribed(t, n, c, good)
			// The longest name and every allowed byte are fine.
			long := tr.name + strings.Repeat("x", 200-len(tr.name))
			c.sub1(t, long, nil)
			c.sub1(t, tr.name+"_-.:@AZaz09", nil)
		})
		t.Run("private", func(t *testing.T) {
			c := tr.dial(t, n)
			c.fail(t, map[string]any{"op": "sub", "topics": []string{"priv.orders.42"}}, 401)
			pub := topicFor(tr, "public")
			c.fail(t, map[string]any{"op": "sub", "topics": []string{pub, "priv.orders.42"}}, 401)
			expectNotSubscribed(t, n, c, pub)
			c.alive(t)
		})
	})
	check()
}

// expectNotSubscribed checks that c does not hold topic after a refused
// sub: publications made now do not reach it, and a sub of it is not 409.
func expectNotSubscribed(t *testing.T, n *node, c *client, topic string) {
	t.Helper()
	before := n.current(t, topic).S
	n.publish(t, topic, payload("x", 1), false)
	n.publish(t, topic, payload("x", 2), false)
	r := c.sub1(t, topic, nil) // 409 here if the refused sub had kept it
	if r.S != before+2 {
		t.Fatalf("sub %s → %+v, want s %d", topic, r, before+2)
	}
	n.publish(t, topic, payload("x", 3), false)
	c.nextPub(t, topic, before+3, payload("x", 3), false)
	c.ok(t, map[string]any{"op": "unsub", "topics": []string{topic}})
}

func TestPub(t *testing.T) {
	t.Parallel()
	n := start(t)
	eachTransport(t, func(t *testing.T, tr transport) {
		c := tr.dial(t, n)
		a := topicFor(tr, "pub")
		p1 := c.pub(t, a, payload("a", 1), false)
		p2 := c.pub(t, a, payload("a", 2), false)
		if p1.S != 1 || p2.S != 2 || p1.E != p2.E {
			t.Fatalf("two pubs → %+v, %+v, want s 1 then 2 in one epoch", p1, p2)
		}
		// Subscribed to the topic: the reply comes before the publication.
		r := c.sub1(t, a, nil)
		if r.pos != p2 {
			t.Fatalf("sub → %+v, want %+v", r, p2)
		}
		id := c.id()
		c.mustSend(t, map[string]any{"op": "pub", "id": id, "t": a, "d": payload("a", 3)})
		m := c.next(t)
		if err := checkReply(m, id); err != nil {
			t.Fatalf("pub while subscribed: first message %v, want the reply", err)
		}
		if p, err := asPos(m["res"]); err != nil || p != (pos{E: p1.E, S: 3}) {
			t.Fatalf("pub reply %s, want {\"e\":%q,\"s\":3}", m, p1.E)
		}
		c.nextPub(t, a, 3, payload("a", 3), false)
		// A snapshot through pub.
		if p := c.pub(t, a, payload("a", 4), true); p.S != 4 {
			t.Fatalf("pub snap → %+v, want s 4", p)
		}
		c.nextPub(t, a, 4, payload("a", 4), true)
		// Other connections see the same stream.
		o := tr.dial(t, n)
		o.sub1(t, a, nil)
		c.pub(t, a, payload("a", 5), false)
		c.nextPub(t, a, 5, payload("a", 5), false)
		o.nextPub(t, a, 4, payload("a", 4), true)
		o.nextPub(t, a, 5, payload("a", 5), false)
		// A bad topic name is 400.
		c.fail(t, map[string]any{"op": "pub", "t": "bad name", "d": 1}, 400)
		c.alive(t)
	})
}

func TestPubNeedsPermission(t *testing.T) {
	t.Parallel()
	n := start(t, func(c *server.Config) { c.AnonymousPub = "" })
	check := healthy(t, n) // a rejection must cost a healthy client nothing
	eachTransport(t, func(t *testing.T, tr transport) {
		c := tr.dial(t, n)
		a := topicFor(tr, "nopub")
		c.fail(t, map[string]any{"op": "pub", "t": a, "d": payload("a", 1)}, 401)
		if p := n.current(t, a); p.S != 0 {
			t.Fatalf("refused pub moved %s to %+v", a, p)
		}
		c.alive(t)
	})
	check()
}

// TestPayloadPassThrough publishes payloads of every JSON kind over HTTP
// and over each transport, and checks every transport receives them
// unchanged.
func TestPayloadPassThrough(t *testing.T) {
	t.Parallel()
	n := start(t)
	payloads := []any{
		map[string]any{"px": "101.25", "qty": 3, "neg": -17, "f": 0.5, "ok": true, "no": false, "nil": nil,
			"list": []any{1, "two", 3.75, []any{}, map[string]any{}}, "uni": "ünï ✓ \"q\" \\ \n", "deep": map[string]any{"a": map[string]any{"b": []any{map[string]any{"c": 1}}}}},
		[]any{1, 2, 3},
		"just a string",
		12345,
		-2.5,
		true,
		map[string]any{"big": int64(1) << 40, "max": int64(9007199254740991)},
	}
	subs := make([]*client, len(transports))
	const topic = "payload.all"
	for i, tr := range transports {
		subs[i] = tr.dial(t, n)
		subs[i].sub1(t, topic, nil)
	}
	seq := uint64(0)
	expectAll := func(d any) {
		t.Helper()
		seq++
		for _, s := range subs {
			s.nextPub(t, topic, seq, d, false)
		}
	}
	for _, d := range payloads {
		n.publish(t, topic, d, false)
		expectAll(d)
	}
	for _, tr := range transports {
		pc := tr.dial(t, n)
		for _, d := range payloads {
			pc.pub(t, topic, d, false)
			expectAll(d)
		}
	}
}

func TestPull(t *testing.T) {
	t.Parallel()
	n := start(t, historySize(5))
	eachTransport(t, func(t *testing.T, tr transport) {
		c := tr.dial(t, n)
		a := topicFor(tr, "pull")
		pull := func(since pos, limit int) (string, []any, bool) {
			t.Helper()
			cmd := map[string]any{"op": "pull", "t": a, "since": since.since()}
			if limit > 0 {
				cmd["limit"] = limit
			}
			res := c.ok(t, cmd)
			if !hasKeys(res, "e", "pubs", "more") {
				t.Fatalf("pull since %+v → %s, want exactly e, pubs, more", since, show(res))
			}
			e, _ := res["e"].(string)
			pubs, ok := res["pubs"].([]any)
			more, mok := res["more"].(bool)
			if e == "" || !ok || !mok {
				t.Fatalf("pull since %+v → %s: e must be a string, pubs a list, more a bool", since, show(res))
			}
			return e, pubs, more
		}
		expectPubs := func(pubs []any, from, to uint64, snapAt uint64) {
			t.Helper()
			if uint64(len(pubs)) != to-from+1 {
				t.Fatalf("pubs %s, want s %d..%d", show(pubs), from, to)
			}
			for i, v := range pubs {
				s := from + uint64(i)
				m, _ := v.(map[string]any)
				if err := expectPub(m, a, s, payload("p", int(s)), s == snapAt); err != nil {
					t.Fatalf("pull: %v", err)
				}
			}
		}
		var p pos
		for i := 1; i <= 4; i++ {
			p = n.publish(t, a, payload("p", i), i == 2)
		}
		e, pubs, more := pull(pos{E: p.E, S: 0}, 2)
		if e != p.E || !more {
			t.Fatalf("pull 0 limit 2 → e %q more %v, want e %q more true", e, more, p.E)
		}
		expectPubs(pubs, 1, 2, 2)
		e, pubs, more = pull(pos{E: p.E, S: 2}, 0)
		if e != p.E || more {
			t.Fatalf("pull 2 → e %q more %v, want e %q more false", e, more, p.E)
		}
		expectPubs(pubs, 3, 4, 0)
		_, pubs, more = pull(pos{E: p.E, S: 4}, 10)
		if len(pubs) != 0 || more {
			t.Fatalf("pull at current → pubs %s more %v, want [] and false", show(pubs), more)
		}
		// Wrong epoch: 410.
		c.fail(t, map[string]any{"op": "pull", "t": a, "since": pos{E: "not-" + p.E, S: 2}.since()}, 410)
		// History of 5: after s 8, only 4..8 are held.
		for i := 5; i <= 8; i++ {
			n.publish(t, a, payload("p", i), false)
		}
		for _, s := range []uint64{0, 1, 2} {
			c.fail(t, map[string]any{"op": "pull", "t": a, "since": pos{E: p.E, S: s}.since()}, 410)
		}
		_, pubs, more = pull(pos{E: p.E, S: 3}, 0)
		if more {
			t.Fatal("pull 3..8 → more true")
		}
		expectPubs(pubs, 4, 8, 0)
		c.alive(t)
	})
}

func TestPullDefaultLimit(t *testing.T) {
	t.Parallel()
	n := start(t, historySize(2000))
	eachTransport(t, func(t *testing.T, tr transport) {
		c := tr.dial(t, n)
		a := topicFor(tr, "pull.limit")
		items := make([]map[string]any, 1000)
		for i := range items {
			items[i] = item(a, i+1, false)
		}
		ps := n.publishBatch(t, items)
		last := n.publish(t, a, 1001, false)
		if last.S != 1001 || ps[0].S != 1 {
			t.Fatalf("published s %d..%d, want 1..1001", ps[0].S, last.S)
		}
		res := c.ok(t, map[string]any{"op": "pull", "t": a, "since": pos{E: last.E, S: 0}.since()})
		pubs, _ := res["pubs"].([]any)
		if len(pubs) != 1000 || res["more"] != true {
			t.Fatalf("pull without limit → %d pubs, more %v, want 1000 and more true", len(pubs), res["more"])
		}
		for i, v := range pubs {
			m, _ := v.(map[string]any)
			if err := expectPub(m, a, uint64(i+1), i+1, false); err != nil {
				t.Fatal(err)
			}
		}
		res = c.ok(t, map[string]any{"op": "pull", "t": a, "since": pos{E: last.E, S: 1000}.since()})
		pubs, _ = res["pubs"].([]any)
		if len(pubs) != 1 || res["more"] != false {
			t.Fatalf("pull since 1000 → %s, want one publication and more false", show(res))
		}
	})
}

// TestLargeMessage sends a command of a few hundred KiB, well under
// --max-frame, which reaches the server over several reads. (Anonymous
// clients get the smaller --anon-max-frame: TestAnonMaxFrame.)
func TestLargeMessage(t *testing.T) {
	t.Parallel()
	n := start(t, func(c *server.Config) { c.AnonMaxFrame = maxFrame })
	check := healthy(t, n) // a rejection must cost a healthy client nothing
	eachTransport(t, func(t *testing.T, tr transport) {
		c := tr.dial(t, n)
		a := topicFor(tr, "large")
		c.sub1(t, a, nil)
		big := strings.Repeat("0123456789abcdef", 300<<10/16)
		c.pub(t, a, big, false)
		c.nextPub(t, a, 1, big, false)
		c.alive(t)
	})
	check()
}

func TestTCPFrameSplitAcrossWrites(t *testing.T) {
	t.Parallel()
	n := start(t)
	c := dialTCP(t, n)
	tw := c.w.(*tcpWire)
	body, _ := msgpack.Marshal(map[string]any{"op": "ping", "id": 1})
	f := append([]byte{0, 0, 0, byte(len(body))}, body...)
	// Cut inside the length, after it, and inside the body. The pauses let
	// each piece reach the server on its own; nothing waits on them.
	for _, cut := range [][2]int{{0, 2}, {2, 4}, {4, 7}, {7, len(f)}} {
		if _, err := tw.c.Write(f[cut[0]:cut[1]]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := checkReply(c.next(t), 1); err != nil {
		t.Fatal(err)
	}
	// Two frames in one write.
	body2, _ := msgpack.Marshal(map[string]any{"op": "ping", "id": 2})
	two := append(append(f[:0:0], f...), append([]byte{0, 0, 0, byte(len(body2))}, body2...)...)
	if _, err := tw.c.Write(two); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{1, 2} {
		if err := checkReply(c.next(t), id); err != nil {
			t.Fatal(err)
		}
	}
}
