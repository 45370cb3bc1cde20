package e2e

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tickfan/tickfan/server"
)

// The Redis tests run several nodes that share topics through a real
// redis-server (internal/redistest) and hold them to PROTOCOL.md as one
// service: a client may subscribe on any node, publish on any other, and
// go from one node to another with its position.

// redisWait bounds a poll for the nodes or Redis to reach a state (ready
// again, a topic let go): the poll ends as soon as it is reached.
const redisWait = 20 * time.Second

// redisNode starts an in-process node that shares topics through Redis
// at addrs (host:port, comma separated for a cluster's seeds).
func redisNode(t testing.TB, addrs string, opts ...func(*server.Config)) *node {
	t.Helper()
	return start(t, append([]func(*server.Config){func(c *server.Config) { c.Redis = addrs }}, opts...)...)
}

// stop shuts a node down before the test ends (its Cleanup's Shutdown
// then does nothing).
func (n *node) stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		t.Fatalf("server.Shutdown: %v", err)
	}
}

// pollUntil polls cond every few milliseconds until it holds, and fails
// the test with what cond last said after redisWait. It is a wait for a
// state, never an assertion on how long it took.
func pollUntil(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(redisWait)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v: %s", what, redisWait, why)
		}
		time.Sleep(10 * time.Millisecond) // a poll interval
	}
}

// status returns the status and body of a GET on the node's HTTP API.
func (n *node) status(t testing.TB, path string) (int, string) {
	t.Helper()
	r, err := n.get(path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return r.status, string(r.raw)
}

// waitReady polls /readyz until it answers 200.
func (n *node) waitReady(t testing.TB) {
	t.Helper()
	pollUntil(t, "/readyz 200", func() (bool, string) {
		st, body := n.status(t, "/readyz")
		return st == http.StatusOK, fmt.Sprintf("%d %s", st, body)
	})
}

// metric is the sum of one metric of the node's /metrics.
func (n *node) metric(t testing.TB, name string) float64 {
	t.Helper()
	return n.metrics(t).sum(name)
}

// ledger records what the test published: each payload at the position
// its publisher's reply gave it. What a subscriber receives is checked
// against it, so a publication delivered under the wrong epoch or seq, or
// with another payload, is caught.
type ledger struct {
	mu sync.Mutex
	at map[string]map[pos]entry // topic → position → publication
}

type entry struct {
	d    any // normalized
	snap bool
}

func newLedger() *ledger { return &ledger{at: make(map[string]map[pos]entry)} }

// add records a publication; two publications at one position fail.
func (l *ledger) add(name string, p pos, d any, snap bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.at[name]
	if m == nil {
		m = make(map[pos]entry)
		l.at[name] = m
	}
	if old, dup := m[p]; dup {
		return fmt.Errorf("%s: two publications answered with position %+v: %s and %s", name, p, show(old.d), show(d))
	}
	m[p] = entry{d: normalize(d), snap: snap}
	return nil
}

func (l *ledger) get(name string, p pos) (entry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.at[name][p]
	return e, ok
}

// publishHTTP publishes over n's HTTP API and records it.
func (l *ledger) publishHTTP(t testing.TB, n *node, name string, d any, snap bool) pos {
	t.Helper()
	p, err := n.tryPublish(name, d, snap)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.add(name, p, d, snap); err != nil {
		t.Fatal(err)
	}
	return p
}

// publishCmd publishes with the pub command on c and records it.
func (l *ledger) publishCmd(t testing.TB, c *client, name string, d any, snap bool) pos {
	t.Helper()
	p := c.pub(t, name, d, snap)
	if err := l.add(name, p, d, snap); err != nil {
		t.Fatal(err)
	}
	return p
}

// received is one publication as a subscriber got it, with the epoch the
// subscriber held it in.
type received struct {
	pos
	d    any
	snap bool
}

// stream is one topic as one client receives it. It applies the
// continuity rules of PROTOCOL.md as messages come: publications in s
// order with no gap, unless a reset comes first; after a sub reply, the
// snapshot at s0 ≤ s (or nothing before s+1); after a reset at s, the
// snapshot at s or the update s+1; a lag names the last seq held.
type stream struct {
	name  string
	epoch string
	next  uint64 // the seq the next update must have
	// fresh: a sub reply or a reset came and nothing since; snapAt is the
	// seq a snapshot may have then (any seq up to it after a sub reply,
	// exactly it after a reset: exact).
	fresh  bool
	snapAt uint64
	exact  bool
	got    []received
	resets []pos
	lags   []uint64
}

// newStream starts a stream at a sub reply without since (or with since
// and rec false, which a reset follows).
func newStream(name string, reply pos) *stream {
	return &stream{name: name, epoch: reply.E, next: reply.S + 1, fresh: true, snapAt: reply.S}
}

// recovered starts a stream at a sub reply with since and rec true: the
// missed publications come from since.S+1.
func recovered(name string, since pos) *stream {
	return &stream{name: name, epoch: since.E, next: since.S + 1}
}

// at reports whether the stream holds exactly p: its epoch and last seq.
func (s *stream) at(p pos) bool { return s.epoch == p.E && s.next == p.S+1 }

func (s *stream) String() string {
	return fmt.Sprintf("%s at %s/%d (%d received, resets %v, lags %v)", s.name, s.epoch, s.next-1, len(s.got), s.resets, s.lags)
}

// handle applies one message of the stream's topic.
func (s *stream) handle(m msg) error {
	switch m["op"] {
	case "reset":
		p, err := asPos(map[string]any{"e": m["e"], "s": m["s"]})
		if err != nil || !hasKeys(m, "op", "t", "e", "s") {
			return fmt.Errorf("reset %s: want exactly {op,t,e,s}", m)
		}
		s.epoch, s.next, s.fresh, s.snapAt, s.exact = p.E, p.S+1, true, p.S, true
		s.resets = append(s.resets, p)
		return nil
	case "lag":
		seq, ok := asUint(m["s"])
		if !ok || !hasKeys(m, "op", "t", "s") {
			return fmt.Errorf("lag %s: want exactly {op,t,s}", m)
		}
		if seq != s.next-1 {
			return fmt.Errorf("%s: lag at s %d, but the client holds s %d", s, seq, s.next-1)
		}
		s.lags = append(s.lags, seq)
		return nil
	case nil:
	default:
		return fmt.Errorf("%s: unexpected message %s", s.name, m)
	}
	p, err := asPub(m)
	if err != nil {
		return err
	}
	switch {
	case s.fresh && p.Snap && (p.S == s.snapAt || !s.exact && p.S >= 1 && p.S <= s.snapAt):
		// The snapshot a sub reply or reset announced.
	case p.S != s.next:
		return fmt.Errorf("%s: got %s (snapshot %v), want s %d next: a gap or a repeat without reset", s, m, p.Snap, s.next)
	}
	s.fresh = false
	s.next = p.S + 1
	s.got = append(s.got, received{pos: pos{E: s.epoch, S: p.S}, d: p.D, snap: p.Snap})
	return nil
}

// verify checks every publication received against the ledger: each must
// be the one published at its position, snapshot or not.
func (s *stream) verify(l *ledger) error {
	for _, r := range s.got {
		want, ok := l.get(s.name, r.pos)
		if !ok {
			return fmt.Errorf("%s: received %s at %s/%d, which no publisher was answered with", s.name, show(r.d), r.E, r.S)
		}
		if !reflect.DeepEqual(r.d, want.d) || r.snap != want.snap {
			return fmt.Errorf("%s: at %s/%d received %s (snapshot %v), published %s (snapshot %v)",
				s.name, r.E, r.S, show(r.d), r.snap, show(want.d), want.snap)
		}
	}
	return nil
}

// seqs returns the seqs received in the epoch e, in order.
func (s *stream) seqs(e string) []uint64 {
	var out []uint64
	for _, r := range s.got {
		if r.E == e {
			out = append(out, r.S)
		}
	}
	return out
}

// subscriber is one client and the streams of the topics it subscribed.
type subscriber struct {
	c       *client
	streams map[string]*stream
}

// subscribe subscribes c to topics without since; each reply entry must be
// rec false, and its position is where the stream starts.
func subscribe(t testing.TB, c *client, topics ...string) (*subscriber, map[string]pos) {
	t.Helper()
	res := c.sub(t, topics, nil)
	s := &subscriber{c: c, streams: make(map[string]*stream)}
	at := make(map[string]pos, len(topics))
	for _, name := range topics {
		if res[name].Rec {
			t.Fatalf("%s: sub %s without since → rec true", c.name, name)
		}
		s.streams[name] = newStream(name, res[name].pos)
		at[name] = res[name].pos
	}
	return s, at
}

// handle routes one message to its topic's stream.
func (s *subscriber) handle(m msg) error {
	if m["op"] == "ping" && len(m) == 1 {
		return nil // a TCP heartbeat
	}
	name, _ := m["t"].(string)
	st := s.streams[name]
	if st == nil {
		return fmt.Errorf("%s: message %s for no topic it subscribed", s.c.name, m)
	}
	return st.handle(m)
}

// waitAt reads until every named stream holds its position, failing on a
// broken rule of continuity or after redisWait.
func (s *subscriber) waitAt(t testing.TB, want map[string]pos) {
	t.Helper()
	deadline := time.Now().Add(redisWait)
	for {
		done := true
		for name, p := range want {
			if !s.streams[name].at(p) {
				done = false
			}
		}
		if done {
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("%s: %s, want %v", s.c.name, s.describe(), want)
		}
		m, err := s.c.recvWithin(min(left, readTimeout))
		if err != nil {
			t.Fatalf("%s: %v; %s, want %v", s.c.name, err, s.describe(), want)
		}
		if err := s.handle(m); err != nil {
			t.Fatalf("%s: %v", s.c.name, err)
		}
	}
}

func (s *subscriber) describe() string {
	var b strings.Builder
	for _, st := range s.streams {
		fmt.Fprintf(&b, "[%s] ", st)
	}
	return b.String()
}

// verify checks each stream's publications against the ledger.
func (s *subscriber) verify(t testing.TB, l *ledger) {
	t.Helper()
	for _, st := range s.streams {
		if err := st.verify(l); err != nil {
			t.Fatalf("%s: %v", s.c.name, err)
		}
	}
}
