package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/internal/servertest"
	"github.com/tickfan/tickfan/server"
)

// startNode starts a server open to anonymous publishing, with
// heartbeats too rare to matter unless mods say otherwise.
func startNode(t *testing.T, mods ...func(*server.Config)) *servertest.Node {
	t.Helper()
	cfg := server.Config{
		AnonymousPub: ">", CmdRate: 1_000_000,
		Heartbeat: time.Minute, IdleTimeout: 5 * time.Minute, DrainTimeout: waitFor,
	}
	for _, mod := range mods {
		mod(&cfg)
	}
	return servertest.Start(t, cfg)
}

// addr is the server's address for p, as Config.Addr wants it.
func addr(n *servertest.Node, p Proto) string {
	if p.WebSocket() {
		return n.WSURL()
	}
	return n.Srv.TCPAddr()
}

// target is the server's host:port for p, for a proxy.
func target(n *servertest.Node, p Proto) string {
	if p.WebSocket() {
		return n.Srv.WSAddr()
	}
	return n.Srv.TCPAddr()
}

// publish publishes the values to a topic, in order, with the pub command
// of a connection of its own, and returns the seq of the last.
func publish(t *testing.T, n *servertest.Node, topic string, values ...any) uint64 {
	t.Helper()
	c := dialT(t, Config{Proto: TCP, Addr: n.Srv.TCPAddr()})
	defer c.Close()
	// In windows of a few commands, each written at once and then
	// answered: the producer's own outbox never passes its high-water
	// mark, however small a test makes it.
	const window = 16
	var last uint64
	var b []byte
	for start := 0; start < len(values); start += window {
		end := min(start+window, len(values))
		b = b[:0]
		for i := start; i < end; i++ {
			b = TCP.AppendPub(b, uint64(i+1), topic, data(t, TCP, values[i]), false)
		}
		if err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		for i := start; i < end; i++ {
			m := reply(t, c, uint64(i+1))
			var pos Position
			if m.Err != nil || m.DecodeRes(&pos) != nil {
				t.Fatalf("pub %s %d: %+v", topic, i+1, m)
			}
			last = pos.S
		}
	}
	return last
}

// subscribeT starts a subscription and closes it when the test ends.
func subscribeT(t *testing.T, cfg Config, topics []string, opts ...Option) *Subscription {
	t.Helper()
	s, err := Subscribe(cfg, topics, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// subscribeFilled subscribes to a topic never published, publishes 1 to
// k to it, and checks that the subscription starts at 0 and delivers
// them.
func subscribeFilled(t *testing.T, n *servertest.Node, cfg Config, topic string, k int) *Subscription {
	t.Helper()
	s := subscribeT(t, cfg, []string{topic}, testBackoff)
	expect(t, s, "subscribed "+topic+" 0")
	values, want := make([]any, k), make([]string, k)
	for i := range k {
		values[i], want[i] = i+1, fmt.Sprintf("pub %s %d %d", topic, i+1, i+1)
	}
	publish(t, n, topic, values...)
	expect(t, s, want...)
	return s
}

// noLeftovers checks, when the test and its subtests have ended and
// their subscriptions were closed, that no goroutine of a subscription is
// left behind.
func noLeftovers(t *testing.T) {
	t.Cleanup(func() {
		if n := ownGoroutines(); n > 0 {
			t.Errorf("%d goroutines of subscriptions left after Close", n)
		}
	})
}

// ownGoroutines counts the goroutines running code of Subscription,
// waiting a little for those that are ending.
func ownGoroutines() int {
	n := 0
	for range 100 {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		n = strings.Count(stacks, "client.(*Subscription)") + strings.Count(stacks, "client.(*connection)")
		if n == 0 {
			return 0
		}
		time.Sleep(10 * time.Millisecond)
	}
	return n
}

// nextEvent returns the next event, failing the test if none comes in
// time or the subscription ends.
func nextEvent(t *testing.T, s *Subscription) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ev, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return ev
}

// describe is an event as the tests compare it.
func describe(ev Event) string {
	switch e := ev.(type) {
	case Pub:
		var v any
		if err := e.DecodeData(&v); err != nil {
			return fmt.Sprintf("pub %s %d undecodable: %v", e.Topic, e.Seq, err)
		}
		return fmt.Sprintf("pub %s %d %v", e.Topic, e.Seq, v)
	case Subscribed:
		return fmt.Sprintf("subscribed %s %d", e.Topic, e.Seq)
	case Recovered:
		if e.Gap {
			return fmt.Sprintf("gap repaired %s from %d", e.Topic, e.From)
		}
		return fmt.Sprintf("recovered %s from %d missed %d", e.Topic, e.From, e.Missed)
	case Reset:
		return fmt.Sprintf("reset %s %d", e.Topic, e.Seq)
	case Lag:
		return fmt.Sprintf("lag %s %d", e.Topic, e.Seq)
	case Resumed:
		return fmt.Sprintf("resumed %s %d", e.Topic, e.Seq)
	case Connected:
		return "connected"
	case Disconnected:
		return fmt.Sprintf("disconnected %d", e.Code)
	}
	return fmt.Sprintf("%T", ev)
}

// expect reads events, leaving out Connected and Disconnected (how many
// attempts a reconnect takes is the network's affair), and checks that
// the next ones are want.
func expect(t *testing.T, s *Subscription, want ...string) {
	t.Helper()
	var got []string
	for len(got) < len(want) {
		switch ev := nextEvent(t, s).(type) {
		case Connected, Disconnected:
		default:
			got = append(got, describe(ev))
			if got[len(got)-1] != want[len(got)-1] {
				t.Fatalf("events %q, want %q", got, want)
			}
		}
	}
}

// awaitDisconnected reads events until a Disconnected, which it returns.
func awaitDisconnected(t *testing.T, s *Subscription) Disconnected {
	t.Helper()
	for {
		switch ev := nextEvent(t, s).(type) {
		case Disconnected:
			return ev
		case Connected:
		default:
			t.Fatalf("%s while waiting for the connection to end", describe(ev))
		}
	}
}

// across runs f over each of protos, as a subtest whose topic is
// prefix.<proto> (a topic of its own).
func across(t *testing.T, protos []Proto, prefix string, f func(t *testing.T, p Proto, topic string)) {
	for _, p := range protos {
		t.Run(string(p), func(t *testing.T) { f(t, p, prefix+"."+strings.ReplaceAll(string(p), "-", "")) })
	}
}

var testBackoff = WithBackoff(Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond})

// TestSubscriptionRecoversAfterCut cuts the link under a subscription
// and publishes while it cannot come back: once it can, the topic
// continues with exactly what it missed, then live publications.
func TestSubscriptionRecoversAfterCut(t *testing.T) {
	noLeftovers(t)
	n := startNode(t)
	across(t, []Proto{WSJSON, WSMsgpack, TCP}, "cut", func(t *testing.T, p Proto, topic string) {
		px := startProxy(t, target(n, p), p)
		s := subscribeFilled(t, n, Config{Proto: p, Addr: px.addr()}, topic, 3)

		px.refuse(true)
		px.cut()
		awaitDisconnected(t, s)
		publish(t, n, topic, 4, 5)
		px.refuse(false)
		expect(t, s, "recovered "+topic+" from 3 missed 2", "pub "+topic+" 4 4", "pub "+topic+" 5 5")
		publish(t, n, topic, 6)
		expect(t, s, "pub "+topic+" 6 6")
		if st := s.Stats(); st.Reconnects < 1 || st.Recovered != 1 || st.Resets != 0 || st.GapsRepaired != 0 {
			t.Errorf("stats %+v, want a reconnect, one recovery, no reset", st)
		}
	})
}

// TestSubscriptionResetWhenHistoryGone publishes more while the link is
// cut than the server's history holds: the subscription cannot continue
// and says so with a Reset, then goes on with what follows it.
func TestSubscriptionResetWhenHistoryGone(t *testing.T) {
	noLeftovers(t)
	n := startNode(t, func(c *server.Config) { c.HistorySize = 5 })
	px := startProxy(t, n.Srv.TCPAddr(), TCP)
	s := subscribeFilled(t, n, Config{Proto: TCP, Addr: px.addr()}, "gone.a", 2)
	px.refuse(true)
	px.cut()
	awaitDisconnected(t, s)
	publish(t, n, "gone.a", 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
	px.refuse(false)
	expect(t, s, "reset gone.a 12")
	publish(t, n, "gone.a", 13)
	expect(t, s, "pub gone.a 13 13")
	if st := s.Stats(); st.Resets != 1 || st.Recovered != 0 {
		t.Errorf("stats %+v, want one reset and no recovery", st)
	}
}

// TestSubscriptionResetAfterRestart restarts a server that keeps its
// topics in memory: the topic's epoch is new, so the subscription gets a
// Reset, and the publications of the new epoch after it.
func TestSubscriptionResetAfterRestart(t *testing.T) {
	noLeftovers(t)
	n := startNode(t)
	s := subscribeFilled(t, n, Config{Proto: WSJSON, Addr: addr(n, WSJSON)}, "restart.a", 2)
	var old string
	n.Restart()
	for old == "" {
		switch ev := nextEvent(t, s).(type) {
		case Reset:
			if ev.Seq != 0 {
				t.Fatalf("reset at %d, want 0: the new server has no publication", ev.Seq)
			}
			old = ev.Epoch
		case Connected, Disconnected:
		default:
			t.Fatalf("%s, want a reset", describe(ev))
		}
	}
	publish(t, n, "restart.a", 7)
	ev := nextEvent(t, s)
	if p, ok := ev.(Pub); !ok || p.Seq != 1 || p.Epoch != old {
		t.Fatalf("%s (%+v), want publication 1 of the reset's epoch %s", describe(ev), ev, old)
	}
}

// TestSubscriptionRepairsGap loses one publication on its way (a proxy
// that drops the frame) and repeats another: the subscription sees the
// hole, resubscribes from the last publication it delivered, and
// delivers every seq once.
func TestSubscriptionRepairsGap(t *testing.T) {
	noLeftovers(t)
	n := startNode(t)
	across(t, []Proto{WSJSON, WSMsgpack, TCP}, "gap", func(t *testing.T, p Proto, topic string) {
		px := startProxy(t, target(n, p), p)
		var dropped atomic.Bool
		px.setFilter(func(fr Frame) int {
			m, err := Decode(fr.Payload, p.Msgpack())
			if err != nil || m.Kind != KindPublication {
				return 1
			}
			switch {
			case m.Seq == 3 && !dropped.Swap(true):
				return 0
			case m.Seq == 5:
				return 2
			}
			return 1
		})
		s := subscribeT(t, Config{Proto: p, Addr: px.addr()}, []string{topic}, testBackoff)
		expect(t, s, "subscribed "+topic+" 0")
		publish(t, n, topic, 1, 2, 3, 4)
		expect(t, s, "pub "+topic+" 1 1", "pub "+topic+" 2 2", "gap repaired "+topic+" from 2", "pub "+topic+" 3 3", "pub "+topic+" 4 4")
		publish(t, n, topic, 5, 6)
		expect(t, s, "pub "+topic+" 5 5", "pub "+topic+" 6 6")
		if st := s.Stats(); st.GapsRepaired != 1 || st.Duplicates != 1 || st.Reconnects != 0 {
			t.Errorf("stats %+v, want one gap repaired and one duplicate dropped on one connection", st)
		}
	})
}

// TestSubscriptionLagResumes lets the user stop reading: the
// subscription's queue fills, it stops reading its socket, and the
// server, its outbox for the client past the high-water mark, sends lag
// and stops pushing. When the user reads again the server resumes from
// its history by itself, and every publication arrives once, in order.
func TestSubscriptionLagResumes(t *testing.T) {
	noLeftovers(t)
	const count = 3000
	n := startNode(t, func(c *server.Config) { c.OutboxMsgs, c.OutboxBytes, c.HistorySize = 64, 64<<10, 10_000 })
	s := subscribeT(t, Config{Proto: TCP, Addr: addr(n, TCP), RcvBuf: 4096}, []string{"lag.a"},
		testBackoff, WithEventBuffer(1))
	expect(t, s, "subscribed lag.a 0")
	pad := strings.Repeat("x", 2000)
	values := make([]any, count)
	for i := range values {
		values[i] = pad
	}
	publish(t, n, "lag.a", values...)
	var want uint64 = 1
	lags, resumed := 0, 0
	for want <= count {
		switch ev := nextEvent(t, s).(type) {
		case Pub:
			if ev.Seq != want {
				t.Fatalf("publication %d, want %d", ev.Seq, want)
			}
			want++
		case Lag:
			if ev.Seq != want-1 {
				t.Fatalf("lag at %d, want the last seq delivered, %d", ev.Seq, want-1)
			}
			lags++
		case Resumed:
			if ev.Seq != want-1 {
				t.Fatalf("resumed at %d, want %d", ev.Seq, want-1)
			}
			resumed++
		default:
			t.Fatalf("%s among the publications", describe(ev))
		}
	}
	if lags == 0 || resumed != lags || s.Stats().Lags != int64(lags) {
		t.Fatalf("%d lags, %d resumed, stats %+v: want the server to have lagged and resumed", lags, resumed, s.Stats())
	}
}

// TestSubscriptionIdle freezes the link: the server's heartbeats no
// longer come, and the subscription drops the connection after its idle
// timeout and continues on a new one. Before that, the heartbeats alone
// keep a quiet connection up.
func TestSubscriptionIdle(t *testing.T) {
	noLeftovers(t)
	const idle, heartbeat = 400 * time.Millisecond, 50 * time.Millisecond
	n := startNode(t, func(c *server.Config) { c.Heartbeat = heartbeat })
	across(t, []Proto{WSJSON, TCP}, "idle", func(t *testing.T, p Proto, topic string) {
		px := startProxy(t, target(n, p), p)
		s := subscribeT(t, Config{Proto: p, Addr: px.addr()}, []string{topic}, testBackoff, WithIdleTimeout(idle))
		expect(t, s, "subscribed "+topic+" 0")
		quiet, cancel := context.WithTimeout(context.Background(), 3*idle)
		ev, err := s.Next(quiet)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%v %v while the server's heartbeats come: want nothing", ev, err)
		}
		px.freeze()
		frozen := time.Now()
		d := awaitDisconnected(t, s)
		// The idle timeout runs from the last byte read, a heartbeat
		// before the freeze (or a little more on a busy machine: the
		// server's wheel ticks every 10 ms), so it ends up to that much
		// sooner than idle after the freeze.
		if took := time.Since(frozen); !errors.Is(d.Err, ErrIdle) || took < idle-3*heartbeat || took > idle+time.Second {
			t.Fatalf("disconnected after %v with %v, want ErrIdle after the idle timeout %v", took, d.Err, idle)
		}
		expect(t, s, "recovered "+topic+" from 0 missed 0")
		publish(t, n, topic, 1)
		expect(t, s, "pub "+topic+" 1 1")
	})
}

// mintToken makes an HS256 token that expires in life.
func mintToken(t *testing.T, secret string, life time.Duration) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "42", "exp": time.Now().Add(life).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestSubscriptionRefreshesToken holds a subscription longer than its
// tokens live: with a TokenFunc it refreshes them in time, retrying a
// refresh whose token could not be had, and the server never closes it; with a fixed token the server closes it at expiry
// (4002), and the expired token is then refused for good.
func TestSubscriptionRefreshesToken(t *testing.T) {
	noLeftovers(t)
	const secret, life = "s3cret", 3 * time.Second
	n := startNode(t, func(c *server.Config) { c.JWTSecret = secret })
	t.Run("refreshed", func(t *testing.T) {
		t.Parallel()
		var calls atomic.Int32
		s := subscribeT(t, Config{Proto: TCP, Addr: addr(n, TCP)}, []string{"tok.a"}, testBackoff,
			WithTokenFunc(func(context.Context) (string, error) {
				if calls.Add(1) == 2 {
					return "", errors.New("the token service is down for a moment")
				}
				return mintToken(t, secret, life), nil
			}))
		ev := nextEvent(t, s)
		c, ok := ev.(Connected)
		if !ok || c.User != "42" || time.Until(c.Expires) > life {
			t.Fatalf("%+v, want Connected as user 42 with the token's expiry", ev)
		}
		expect(t, s, "subscribed tok.a 0")
		// Past the first token's expiry, and then some.
		end := c.Expires.Add(life / 2)
		for i := 1; time.Now().Before(end); i++ {
			publish(t, n, "tok.a", i)
			expect(t, s, fmt.Sprintf("pub tok.a %d %d", i, i))
			time.Sleep(250 * time.Millisecond)
		}
		if got := calls.Load(); got < 4 {
			t.Errorf("TokenFunc called %d times, want the first token, a refresh that failed, its retry and the next refresh", got)
		}
		if st := s.Stats(); st.Reconnects != 0 {
			t.Errorf("stats %+v, want no reconnect", st)
		}
	})
	t.Run("fixed token expires", func(t *testing.T) {
		t.Parallel()
		s := subscribeT(t, Config{Proto: WSJSON, Addr: addr(n, WSJSON)}, []string{"tok.b"}, testBackoff,
			WithToken(mintToken(t, secret, life)))
		if ev := nextEvent(t, s); describe(ev) != "connected" {
			t.Fatalf("%s, want connected", describe(ev))
		}
		expect(t, s, "subscribed tok.b 0")
		ctx, cancel := context.WithTimeout(context.Background(), life+waitFor)
		defer cancel()
		ev, err := s.Next(ctx)
		if d, ok := ev.(Disconnected); !ok || d.Code != 4002 {
			t.Fatalf("%+v %v, want a disconnect with 4002 token expired", ev, err)
		}
		if got := untilEnd(t, s, ctx, "auth refused: 401"); slices.Contains(got, "connected") {
			t.Fatalf("events %q: connected with an expired token", got)
		}
	})
}

// untilEnd reads events until Next fails, and checks that it fails
// with a refusal that reads as want and carries the server's code; it
// returns the events read before.
func untilEnd(t *testing.T, s *Subscription, ctx context.Context, want string) []string {
	t.Helper()
	var got []string
	for {
		ev, err := s.Next(ctx)
		if err == nil {
			got = append(got, describe(ev))
			continue
		}
		var re *RefusedError
		var ce *codec.Error
		if !errors.As(err, &re) || !errors.As(err, &ce) || err.Error() != want+" "+ce.Msg {
			t.Fatalf("Next: %v after %q, want %s", err, got, want)
		}
		return got
	}
}

// TestSubscriptionRefused: a sub the server refuses for good ends the
// subscription at once with the server's error, without reconnecting.
func TestSubscriptionRefused(t *testing.T) {
	noLeftovers(t)
	n := startNode(t)
	s := subscribeT(t, Config{Proto: WSMsgpack, Addr: addr(n, WSMsgpack)}, []string{"priv.orders.42"}, testBackoff)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if got := untilEnd(t, s, ctx, "sub refused: 401"); !slices.Equal(got, []string{"connected"}) || s.Stats().Reconnects != 0 {
		t.Fatalf("events %q, stats %+v: want one connection and no retry", got, s.Stats())
	}
	if _, err := s.Next(ctx); err == nil {
		t.Fatal("Next after the end: no error")
	}
}

// TestSubscribeBadArguments: what cannot work is refused at once.
func TestSubscribeBadArguments(t *testing.T) {
	noLeftovers(t)
	for _, cfg := range []Config{{}, {Addr: "127.0.0.1:1", Proto: "udp"}} {
		if _, err := Subscribe(cfg, []string{"a"}); err == nil {
			t.Errorf("Subscribe(%+v): no error", cfg)
		}
	}
	for _, tc := range []struct {
		topics []string
		opts   []Option
		want   string
	}{
		{nil, nil, "no topics"},
		{[]string{"a..b"}, nil, `"a..b"`},
		{[]string{"a"}, []Option{WithSince("b", Position{E: "e", S: 1})}, `since of "b"`},
		{[]string{"a"}, []Option{WithConflate("x..y")}, "conflate"},
	} {
		if _, err := Subscribe(Config{Addr: "127.0.0.1:1"}, tc.topics, tc.opts...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Subscribe(%q): %v, want an error with %q", tc.topics, err, tc.want)
		}
	}
}

// TestSubscriptionCloseWhileWaiting closes a subscription whose server
// is not there: Close ends the waits between attempts at once.
func TestSubscriptionCloseWhileWaiting(t *testing.T) {
	noLeftovers(t)
	s := subscribeT(t, Config{Proto: TCP, Addr: "127.0.0.1:1"}, []string{"a"},
		WithBackoff(Backoff{Min: time.Hour, Max: time.Hour, Jitter: NoJitter}))
	d := awaitDisconnected(t, s)
	if d.Retry != time.Hour || d.Err == nil {
		t.Fatalf("%+v, want the dial error and a retry in 1h", d)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("Close still waiting")
	}
	if _, err := s.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v, want ErrClosed", err)
	}
}

// TestSubscriptionDrain: a draining server's 4007 asks the client to
// come back (to another node, or to this one once it is back), so the
// subscription keeps trying until a server is there again.
func TestSubscriptionDrain(t *testing.T) {
	noLeftovers(t)
	n := startNode(t)
	s := subscribeFilled(t, n, Config{Proto: WSJSON, Addr: addr(n, WSJSON)}, "drain.a", 1)
	drained := make(chan struct{})
	go func() {
		n.Srv.Drain()
		close(drained)
	}()
	if d := awaitDisconnected(t, s); d.Code != 4007 {
		t.Fatalf("disconnected %+v, want code 4007", d)
	}
	<-drained
	n.Restart()
	expect(t, s, "reset drain.a 0")
}

// TestSubscriptionBackoff: the wait doubles with each attempt that
// fails, and with each connection that breaks before it was healthy for
// Backoff.Healthy; a connection that was healthy that long starts the
// waits again from Min.
func TestSubscriptionBackoff(t *testing.T) {
	noLeftovers(t)
	n := startNode(t)
	px := startProxy(t, target(n, TCP), TCP)
	px.refuse(true)
	b := Backoff{Min: 10 * time.Millisecond, Max: time.Second, Jitter: NoJitter, Healthy: 300 * time.Millisecond}
	s := subscribeT(t, Config{Proto: TCP, Addr: px.addr()}, []string{"backoff.a"}, WithBackoff(b))
	var retries []time.Duration
	for range 3 {
		retries = append(retries, awaitDisconnected(t, s).Retry)
	}
	px.refuse(false)
	expect(t, s, "subscribed backoff.a 0")
	px.cut() // at once: not healthy yet
	retries = append(retries, awaitDisconnected(t, s).Retry)
	expect(t, s, "recovered backoff.a from 0 missed 0")
	time.Sleep(b.Healthy + 50*time.Millisecond)
	px.cut()
	retries = append(retries, awaitDisconnected(t, s).Retry)
	want := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond, 10 * time.Millisecond}
	if !slices.Equal(retries, want) {
		t.Fatalf("retries %v, want %v", retries, want)
	}
}

// closingServer accepts TCP connections and closes each one at once with
// {"op":"close","code":code}, as a server does that turns a client away.
func closingServer(t *testing.T, code int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write(TCP.AppendCommand(nil, map[string]any{"op": "close", "code": code, "reason": "turned away"}))
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// TestSubscriptionCloseCodes: a close that asks the client to come back
// later (4006 too many connections) is retried with backoff; one that
// says the same request would be refused again (4004) ends the
// subscription with the server's code.
func TestSubscriptionCloseCodes(t *testing.T) {
	noLeftovers(t)
	again := subscribeT(t, Config{Proto: TCP, Addr: closingServer(t, 4006)}, []string{"a"}, testBackoff)
	for range 3 {
		if d := awaitDisconnected(t, again); d.Code != 4006 || d.Err.Error() != "server closed the connection with 4006 turned away" {
			t.Fatalf("%+v, want a disconnect with 4006", d)
		}
	}
	final := subscribeT(t, Config{Proto: TCP, Addr: closingServer(t, 4004)}, []string{"a"}, testBackoff)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for {
		ev, err := final.Next(ctx)
		if err == nil {
			if _, ok := ev.(Connected); !ok {
				t.Fatalf("%s, want the end", describe(ev))
			}
			continue
		}
		var ce *CloseError
		if !errors.As(err, &ce) || ce.Code != 4004 || final.Stats().Reconnects != 0 {
			t.Fatalf("Next: %v, stats %+v; want the close 4004 and no retry", err, final.Stats())
		}
		break
	}
}
