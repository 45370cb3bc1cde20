package server

import (
	"strings"
	"testing"
)

// seqs returns the seq of each publication of topic name the socket got
// since the last reset, and whether a reset came. A reset must follow a
// lag (the loop fell behind, as a slow client's topics do), and a lag
// must give the last seq received.
func seqs(t *testing.T, sock *socket, name string) (got []uint64, reset bool) {
	t.Helper()
	lagged := false
	for _, m := range sock.messages(t) {
		if m["t"] != name {
			continue
		}
		switch m["op"] {
		case "lag":
			if s := uint64(m["s"].(float64)); len(got) > 0 && s != got[len(got)-1] {
				t.Fatalf("lag s=%d after seq %d", s, got[len(got)-1])
			}
			lagged = true
			continue
		case "reset":
			if !lagged {
				t.Fatal("reset without lag first")
			}
			reset, got, lagged = true, nil, false
			continue
		}
		if s, ok := m["s"].(float64); ok {
			got = append(got, uint64(s))
		}
	}
	return got, reset
}

func contiguous(t *testing.T, got []uint64, from, to uint64) {
	t.Helper()
	if len(got) == 0 || got[0] != from || got[len(got)-1] != to {
		t.Fatalf("got seq %v..., want %d..%d", head(got), from, to)
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("gap after seq %d: next %d", got[i-1], got[i])
		}
	}
}

func head(s []uint64) []uint64 { return s[:min(len(s), 8)] }

// TestOutboxBoundedAtEnqueue delivers 5,000 publications to a stalled
// client in one loop turn: its outbox must not pass the high-water mark
// at any point of the turn (the client goes slow as the mark is crossed),
// not merely after the turn's write.
func TestOutboxBoundedAtEnqueue(t *testing.T) {
	srv, l := testServer(t, Config{OutboxBytes: 32 << 10, OutboxMsgs: 1000, HistorySize: 10000})
	sock := &socket{stalled: true}
	c := subscribe(t, l, sock, "book.X")
	payload := []byte(`"` + strings.Repeat("x", 200) + `"`)
	for range 5000 {
		if _, err := srv.engine.Publish("book.X", payload, false, false); err != nil {
			t.Fatal(err)
		}
	}
	l.mu.Lock()
	batch := l.inbox.take()
	l.scheduled = false
	l.mu.Unlock()
	peak := 0
	for _, p := range batch {
		for _, s := range l.topics[p.Topic].subs {
			s.c.deliver(s, p)
		}
		peak = max(peak, c.out.bytes)
	}
	if limit := 32<<10 + 300; peak > limit {
		t.Fatalf("outbox peaked at %d bytes within one turn, mark %d", peak, 32<<10)
	}
	if !c.slow {
		t.Fatal("client over its mark is not slow")
	}
}

// TestQueueMemoryShares holds many clients that are each under their own
// mark but together over --queue-memory: they are held to their share,
// go slow, and the bytes queued for them stay near the budget.
func TestQueueMemoryShares(t *testing.T) {
	const budget = 256 << 10
	srv, l := testServer(t, Config{OutboxBytes: 1 << 20, OutboxMsgs: 100000, HistorySize: 10000, QueueMemory: budget})
	var conns []*conn
	for range 8 {
		conns = append(conns, subscribe(t, l, &socket{stalled: true}, "book.X"))
	}
	payload := []byte(`"` + strings.Repeat("x", 1000) + `"`)
	for i := range 500 { // 500 KB each: under its own mark of 1 MiB
		if _, err := srv.engine.Publish("book.X", payload, false, false); err != nil {
			t.Fatal(err)
		}
		if i%20 == 19 {
			l.turn()
			l.poll()
		}
	}
	l.turn()
	l.poll()
	slow := 0
	for _, c := range conns {
		if c.slow {
			slow++
		}
	}
	if slow != len(conns) {
		t.Fatalf("%d of %d clients slow; each is under its own mark, all together over the budget", slow, len(conns))
	}
	// Each holds at most its share (and one write's batch) in the outbox
	// and its share in the engine's buffer.
	if q, limit := srv.queuedBytes(l), int64(2*budget+len(conns)*20*1100); q > limit {
		t.Fatalf("%d bytes queued for clients, budget %d", q, budget)
	}
	if got := metricValue(t, srv, "tickfan_queued_bytes"); got != float64(srv.queuedBytes(l)) {
		t.Fatalf("tickfan_queued_bytes %v, want %d", got, srv.queuedBytes(l))
	}
}

// TestInboxOverflowCatchesUp fills a loop's inbox past its bound while the
// loop does not run: the publications it refuses reach the subscriber from
// history at the loop's next turn, in order and with nothing lost; and a
// subscriber further behind than the history holds gets reset, then
// contiguous data.
func TestInboxOverflowCatchesUp(t *testing.T) {
	for _, tc := range []struct {
		name    string
		history int
		reset   bool
	}{{"within history", 1000, false}, {"beyond history", 50, true}} {
		t.Run(tc.name, func(t *testing.T) {
			srv, l := testServer(t, Config{HistorySize: tc.history})
			sock := &socket{}
			subscribe(t, l, sock, "book.X")
			if _, err := srv.engine.Publish("book.X", []byte(`1`), false, false); err != nil {
				t.Fatal(err)
			}
			l.turn()
			l.mu.Lock()
			l.inbox.max = 10
			l.mu.Unlock()
			for range 299 {
				if _, err := srv.engine.Publish("book.X", []byte(`2`), false, false); err != nil {
					t.Fatal(err)
				}
			}
			l.turn()
			l.mu.Lock()
			l.inbox.max = inboxBound(tc.history)
			l.mu.Unlock()
			for range 5 { // live again after the catch-up
				if _, err := srv.engine.Publish("book.X", []byte(`3`), false, false); err != nil {
					t.Fatal(err)
				}
			}
			l.turn()
			got, reset := seqs(t, sock, "book.X")
			if reset != tc.reset {
				t.Fatalf("reset %v, want %v", reset, tc.reset)
			}
			if tc.reset { // what follows the reset is contiguous
				contiguous(t, got, 301, 305)
			} else {
				contiguous(t, got, 1, 305)
			}
			if got := metricValue(t, srv, "tickfan_inbox_overflows_total"); got != 289 {
				t.Fatalf("tickfan_inbox_overflows_total %v, want 289", got)
			}
		})
	}
}

// metricValue reads one series without labels from the server's registry.
func metricValue(t *testing.T, srv *Server, name string) float64 {
	t.Helper()
	mfs, err := srv.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) != 1 {
			continue
		}
		m := mf.GetMetric()[0]
		switch {
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestTurnIsBounded has a loop take 60 publications for 20 subscribers
// with room for 100 visits a turn: the turn leaves the rest, asks for
// another turn (so the engine reads its sockets in between), and the
// following turns deliver the rest in order.
func TestTurnIsBounded(t *testing.T) {
	srv, l := testServer(t, Config{HistorySize: 1000})
	wakes := 0
	l.SetWake(func() { wakes++ })
	l.turnVisits = 100
	var socks []*socket
	for range 20 {
		s := &socket{}
		socks = append(socks, s)
		subscribe(t, l, s, "book.X")
	}
	// Subscribers of a loop with 20 connections get at least 256 visits
	// each a turn: take more than that.
	l.turnVisits = 0
	for range 600 {
		if _, err := srv.engine.Publish("book.X", []byte(`1`), false, false); err != nil {
			t.Fatal(err)
		}
	}
	l.turn()
	if got, _ := seqs(t, socks[0], "book.X"); len(got) == 0 || len(got) >= 600 {
		t.Fatalf("one turn delivered %d of 600 publications to each of 20 subscribers, want a bounded share", len(got))
	}
	if wakes == 0 {
		t.Fatal("a turn that left publications asked for no other turn")
	}
	for i := 0; i < 100 && l.pendingAt < len(l.pending); i++ {
		l.turn()
	}
	for _, s := range socks {
		got, reset := seqs(t, s, "book.X")
		if reset {
			t.Fatal("reset within history")
		}
		contiguous(t, got, 1, 600)
	}
}

// TestSkipOlderThanHistory gives a loop more publications of a topic than
// its history holds in one turn: those the history no longer holds are not
// sent late; the subscriber gets reset, then live data, contiguous.
func TestSkipOlderThanHistory(t *testing.T) {
	srv, l := testServer(t, Config{HistorySize: 50})
	sock := &socket{}
	subscribe(t, l, sock, "book.X")
	for range 300 {
		if _, err := srv.engine.Publish("book.X", []byte(`1`), false, false); err != nil {
			t.Fatal(err)
		}
	}
	l.turn()
	for range 5 {
		if _, err := srv.engine.Publish("book.X", []byte(`2`), false, false); err != nil {
			t.Fatal(err)
		}
	}
	l.turn()
	got, reset := seqs(t, sock, "book.X")
	if !reset {
		t.Fatal("no reset for publications older than the history")
	}
	contiguous(t, got, 301, 305)
	if n := len(sock.messages(t)); n > 20 {
		t.Fatalf("%d messages sent; the 250 publications beyond the history must not be", n)
	}
	if got := metricValue(t, srv, "tickfan_inbox_overflows_total"); got != 250 {
		t.Fatalf("tickfan_inbox_overflows_total %v, want 250", got)
	}
}
