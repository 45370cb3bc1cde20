package server

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/server/reactor"
)

// socket is a fake transport: what is written is kept as the client will
// read it; while stalled, everything written stays in the "reactor's write
// buffer" (the client does not read), as with a full TCP window.
type socket struct {
	got      [][]byte
	buffered int
	stalled  bool
	closed   bool
	shut     bool // write side shut
	room     int  // stalled: bytes the kernel still takes before it is full
}

func (s *socket) Writev(bs [][]byte) (int, error) {
	n := 0
	for _, b := range bs {
		s.got = append(s.got, append([]byte(nil), b...))
		n += len(b)
	}
	if s.stalled {
		took := min(n, s.room) // the kernel takes up to room first
		s.room -= took
		s.buffered += n - took
	}
	return n, nil
}

func (s *socket) Write(b []byte) (int, error) { return s.Writev([][]byte{b}) }

func (s *socket) OutboundBuffered() int { return s.buffered }
func (s *socket) Close() error          { s.closed = true; return nil }
func (s *socket) CloseWrite() error     { s.shut = true; return nil }
func (s *socket) WakeInput()            {}

// messages decodes the server frames written so far (WebSocket, JSON).
func (s *socket) messages(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, f := range s.got {
		for len(f) > 0 {
			n := int(f[1] & 0x7f)
			h := 2
			switch n {
			case 126:
				n, h = int(binary.BigEndian.Uint16(f[2:])), 4
			case 127:
				n, h = int(binary.BigEndian.Uint64(f[2:])), 10
			}
			var m map[string]any
			if f[0]&0x0f == 1 {
				if err := json.Unmarshal(f[h:h+n], &m); err != nil {
					t.Fatalf("frame %q: %v", f[h:h+n], err)
				}
				out = append(out, m)
			}
			f = f[h+n:]
		}
	}
	return out
}

func testServer(t *testing.T, cfg Config) (*Server, *loop) {
	t.Helper()
	cfg.Loops = 1
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.wheel.Close)
	return srv, srv.loops[0]
}

func subscribe(t *testing.T, l *loop, sock *socket, topics ...string) *conn {
	t.Helper()
	c := newConn(sock, l, reactor.WebSocket)
	c.state = stOpen
	body := fmt.Sprintf(`{"op":"sub","id":1,"topics":["%s"]}`, strings.Join(topics, `","`))
	c.handle([]byte(body))
	l.flush()
	return c
}

// TestStalledClientLagsAndResumes stalls one of two subscribers while 2,000
// publications of 1 KiB go out. The healthy one gets every seq; the stalled
// one's queue stays near the high-water mark; it gets lag, and once it
// reads again the missed range from history, contiguous.
func TestStalledClientLagsAndResumes(t *testing.T) {
	srv, l := testServer(t, Config{OutboxBytes: 64 << 10, OutboxMsgs: 1000, HistorySize: 5000})
	healthy, stalled := &socket{}, &socket{}
	subscribe(t, l, healthy, "book.X")
	c := subscribe(t, l, stalled, "book.X")
	stalled.stalled = true
	payload := []byte(`"` + strings.Repeat("x", 1000) + `"`)
	peak := 0
	for i := 0; i < 2000; i++ {
		if _, err := srv.engine.Publish("book.X", payload, false, false); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			l.turn()
			peak = max(peak, c.out.bytes)
		}
	}
	l.turn()
	if !c.slow {
		t.Fatal("stalled client is not marked slow")
	}
	// Our queue is bounded by the mark plus one batch; the socket buffer by
	// what one write handed over before the socket was seen busy.
	if limit := 64<<10 + 10*1100; peak > limit {
		t.Fatalf("stalled outbox peaked at %d bytes, bound %d", peak, limit)
	}
	if stalled.buffered > 64<<10+10*1100 {
		t.Fatalf("socket buffer grew to %d bytes", stalled.buffered)
	}

	// The client reads again: the reactor's buffer drains, the poll sees it.
	stalled.stalled, stalled.buffered = false, 0
	l.poll()
	l.flush()
	// Resuming queued the backlog; one more turn writes what remains.
	for i := 0; i < 5 && (c.slow || len(c.out.frames) > 0); i++ {
		l.poll()
		l.turn()
	}

	assertContiguous(t, "healthy", healthy.messages(t), "book.X", 2000, false)
	assertContiguous(t, "stalled", stalled.messages(t), "book.X", 2000, true)
}

// assertContiguous checks a client's view of one topic: publications in seq
// order with no gap and no repeat, except right after a lag (a later
// publication resumes from lag's s+1) or a reset; the last seq is last.
func assertContiguous(t *testing.T, who string, msgs []map[string]any, name string, last uint64, wantLag bool) {
	t.Helper()
	var seq uint64
	lags := 0
	for _, m := range msgs {
		switch {
		case m["op"] == "lag" && m["t"] == name:
			lags++
			if s := uint64(m["s"].(float64)); s != seq {
				t.Fatalf("%s: lag s=%d, but the last publication seen is %d", who, s, seq)
			}
		case m["op"] == "reset" && m["t"] == name:
			seq = uint64(m["s"].(float64)) - 1
		case m["t"] == name && m["op"] == nil:
			s := uint64(m["s"].(float64))
			if s != seq+1 {
				t.Fatalf("%s: seq %d after %d", who, s, seq)
			}
			seq = s
		}
	}
	if seq != last {
		t.Fatalf("%s: last seq %d, want %d", who, seq, last)
	}
	if wantLag != (lags > 0) {
		t.Fatalf("%s: %d lag messages, want lag: %v", who, lags, wantLag)
	}
}

// TestConflatedTopicSendsNewest checks a latest-value topic keeps only its
// newest unsent publication while the socket is busy, and never lags.
func TestConflatedTopicSendsNewest(t *testing.T) {
	srv, l := testServer(t, Config{})
	sock := &socket{}
	c := subscribe(t, l, sock, "ticker.X")
	sock.stalled = true
	sock.buffered = 1 // the socket is busy: nothing is written
	for i := 1; i <= 500; i++ {
		if _, err := srv.engine.Publish("ticker.X", []byte(fmt.Sprint(i)), false, false); err != nil {
			t.Fatal(err)
		}
		l.turn()
	}
	if len(c.out.frames) != 1 {
		t.Fatalf("%d frames queued for a conflated topic, want 1", len(c.out.frames))
	}
	sock.stalled, sock.buffered = false, 0
	l.poll()
	l.flush()
	msgs := sock.messages(t)
	last := msgs[len(msgs)-1]
	if last["t"] != "ticker.X" || last["s"].(float64) != 500 || last["d"].(float64) != 500 {
		t.Fatalf("last message %v, want ticker.X s=500 d=500", last)
	}
	for _, m := range msgs {
		if m["op"] == "lag" {
			t.Fatalf("conflated topic got lag: %v", m)
		}
	}
	if got := l.stats.conflated.Load(); got != 499 {
		t.Fatalf("conflated counter %d, want 499", got)
	}
}

// stalledSubscriber subscribes a client on a stalled socket to book.X and
// publishes n publications of 1 KiB, the loop turning after each.
func stalledSubscriber(t *testing.T, srv *Server, l *loop, n int) (*conn, *socket) {
	t.Helper()
	sock := &socket{stalled: true}
	c := subscribe(t, l, sock, "book.X")
	payload := []byte(`"` + strings.Repeat("x", 1000) + `"`)
	for i := 0; i < n; i++ {
		if _, err := srv.engine.Publish("book.X", payload, false, false); err != nil {
			t.Fatal(err)
		}
		l.turn()
	}
	return c, sock
}

// slowTimeoutPassed runs c's timer as if the slow timeout had passed since
// c turned slow, and flushes what that queued.
func slowTimeoutPassed(srv *Server, l *loop, c *conn) {
	c.slowSince -= int64(srv.cfg.SlowTimeout)
	c.onTimer()
	l.flush()
}

// expectClosedSlow fails unless the last message sock got is op close 4005.
func expectClosedSlow(t *testing.T, sock *socket) {
	t.Helper()
	msgs := sock.messages(t)
	if last := msgs[len(msgs)-1]; last["op"] != "close" || last["code"].(float64) != float64(codec.DisconnectSlowClient.Code) {
		t.Fatalf("last message %v, want op close 4005", last)
	}
}

// TestSlowClientClosedAfterTimeout keeps a client over its mark past the
// slow timeout and expects close 4005.
func TestSlowClientClosedAfterTimeout(t *testing.T) {
	srv, l := testServer(t, Config{OutboxBytes: 4 << 10})
	c, sock := stalledSubscriber(t, srv, l, 20)
	if !c.slow {
		t.Fatal("client not slow")
	}
	slowTimeoutPassed(srv, l, c)
	if !c.closing {
		t.Fatal("slow client not closed after the slow timeout")
	}
	expectClosedSlow(t, sock)
	// The close waits for the socket to take the bytes before it: shutting
	// the write side or closing now would cut off the op close.
	if sock.shut || sock.closed {
		t.Fatalf("write side shut %v, closed %v while the socket still holds bytes", sock.shut, sock.closed)
	}
	sock.stalled, sock.buffered = false, 0 // the client read it all
	l.poll()
	l.flush()
	if !sock.shut || sock.closed {
		t.Fatalf("after the socket drained: write side shut %v (want true), closed %v (want false: the client closes first)", sock.shut, sock.closed)
	}
	c.nextPing -= int64(reactor.CloseLinger) // the client never closed its side
	c.onTimer()
	if !sock.closed {
		t.Fatal("not closed once the close's linger passed")
	}
}

// TestPullReplyBoundedByBytes checks a pull of large publications stops at
// the outbox budget and says more, and that the next pull continues.
func TestPullReplyBoundedByBytes(t *testing.T) {
	srv, l := testServer(t, Config{OutboxBytes: 10 << 10})
	sock := &socket{}
	c := newConn(sock, l, reactor.WebSocket)
	c.state = stOpen
	payload := []byte(`"` + strings.Repeat("p", 4000) + `"`)
	var epoch string
	for i := 0; i < 10; i++ {
		pos, err := srv.engine.Publish("book.P", payload, false, false)
		if err != nil {
			t.Fatal(err)
		}
		epoch = pos.Epoch
	}
	c.handle([]byte(`{"op":"pull","id":1,"t":"book.P","since":{"e":"` + epoch + `","s":0}}`))
	l.flush()
	msgs := sock.messages(t)
	res := msgs[0]["res"].(map[string]any)
	if n := len(res["pubs"].([]any)); n != 2 || res["more"] != true {
		t.Fatalf("pull gave %d publications, more %v; want 2 (a third 4 KiB one would pass 10 KiB) and more", n, res["more"])
	}
	c.handle([]byte(`{"op":"pull","id":2,"t":"book.P","since":{"e":"` + epoch + `","s":2}}`))
	l.flush()
	res = sock.messages(t)[1]["res"].(map[string]any)
	if first := res["pubs"].([]any)[0].(map[string]any)["s"].(float64); first != 3 {
		t.Fatalf("next pull starts at s=%v, want 3", first)
	}
}

// TestUnsubKeepsOtherCatchup unsubscribes one topic while another is
// catching up from history with a chunk queued behind a busy socket: the
// chunk of the other topic must stay, so its client sees no gap.
func TestUnsubKeepsOtherCatchup(t *testing.T) {
	srv, l := testServer(t, Config{OutboxBytes: 8 << 10, HistorySize: 1000})
	sock := &socket{}
	c := subscribe(t, l, sock, "book.A", "book.B")
	payload := []byte(`"` + strings.Repeat("a", 500) + `"`)
	for i := 0; i < 100; i++ {
		if _, err := srv.engine.Publish("book.A", payload, false, false); err != nil {
			t.Fatal(err)
		}
	}
	// book.A continues from history in chunks; the first chunk waits
	// behind a busy socket.
	sock.buffered = 1
	a := c.sub("book.A")
	c.pause(a)
	c.resumeChunk(a, 2<<10)
	if !a.paused || len(c.out.frames) == 0 {
		t.Fatalf("setup: paused %v, %d frames queued", a.paused, len(c.out.frames))
	}
	c.handle([]byte(`{"op":"unsub","id":2,"topics":["book.B"]}`))
	sock.buffered = 0
	for i := 0; i < 50 && (a.paused || len(c.out.frames) > 0); i++ {
		l.poll()
		l.turn()
		l.flush()
	}
	assertContiguous(t, "catching up", sock.messages(t), "book.A", 100, false)
}

// TestSlowUntilCaughtUp: a lagged client whose socket buffer takes the
// first chunk of its catch-up and then stalls again is still slow (it has
// not caught up), so it is closed with 4005 after the slow timeout rather
// than held, lagged and under the mark, for as long as it stays connected.
func TestSlowUntilCaughtUp(t *testing.T) {
	srv, l := testServer(t, Config{OutboxBytes: 16 << 10, OutboxMsgs: 1000, HistorySize: 5000})
	c, sock := stalledSubscriber(t, srv, l, 200)
	if !c.slow || c.paused == 0 {
		t.Fatalf("slow %v, paused %d: want a lagged, slow client", c.slow, c.paused)
	}
	// The kernel takes what was written (the reactor holds nothing) and
	// room for the first chunk of the catch-up; then it is full again.
	sock.buffered, sock.room = 0, 10<<10
	l.poll()
	l.flush()
	if c.paused == 0 {
		t.Fatal("caught up in one chunk: the test needs a longer backlog")
	}
	if !c.slow {
		t.Fatal("no longer slow after one chunk of its catch-up, though still lagged")
	}
	slowTimeoutPassed(srv, l, c)
	expectClosedSlow(t, sock)
}
