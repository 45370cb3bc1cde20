package e2e

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tickfan/tickfan/internal/redistest"
	"github.com/tickfan/tickfan/server"
)

// TestRedisKilled: Redis dies mid-stream (SIGKILL: its data is gone with
// it). The node stays up and says so: /healthz 200, /readyz 503 naming
// Redis, publishing answers 503 (pub and HTTP), a sub of a topic the node
// does not hold answers 503, and every client stays connected and
// answered. Redis comes back empty: /readyz is 200 again, publishing
// works and starts a new epoch at s 1, and the subscribers get reset with
// that epoch at it, then every publication after it in order.
func TestRedisKilled(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	a := redisNode(t, r.Addr, func(c *server.Config) { c.RedisTimeout = time.Second })
	led := newLedger()
	snapT, updT := "kill.snap", "kill.upd"
	topics := []string{snapT, updT}
	var subs []*subscriber
	for _, tr := range transports {
		s, _ := subscribe(t, tr.dial(t, a), topics...)
		subs = append(subs, s)
	}
	prod := dialTCP(t, a)
	before := map[string]pos{}
	for i := 1; i <= 3; i++ {
		for _, name := range topics {
			if i == 2 {
				before[name] = led.publishHTTP(t, a, name, payload(name, i), true)
			} else {
				before[name] = led.publishCmd(t, prod, name, payload(name, i), false)
			}
		}
	}
	for _, s := range subs {
		s.waitAt(t, before)
	}

	r.Kill()
	pollUntil(t, "/readyz 503 naming redis", func() (bool, string) {
		st, body := a.status(t, "/readyz")
		return st == http.StatusServiceUnavailable && strings.Contains(strings.ToLower(body), "redis"), body
	})
	if st, body := a.status(t, "/healthz"); st != http.StatusOK {
		t.Fatalf("/healthz with Redis down: %d %s, want 200", st, body)
	}
	// Every publish answers 503, not only the first: a publication goes
	// over any of the node's pipelined connections to Redis (up to four),
	// so enough are sent to try each of them.
	for i := range 32 {
		expectHTTPErr(t, "HTTP publish with Redis down", a.publishBody(t, item(topics[i%2], i, false)), http.StatusServiceUnavailable)
		prod.fail(t, map[string]any{"op": "pub", "t": topics[i%2], "d": i}, http.StatusServiceUnavailable)
	}
	prod.alive(t)
	for _, s := range subs {
		s.c.alive(t)
	}
	late := dialTCP(t, a)
	late.fail(t, map[string]any{"op": "sub", "topics": []string{"kill.other"}}, http.StatusServiceUnavailable)
	late.alive(t)
	if st, _ := a.status(t, "/readyz"); st != http.StatusServiceUnavailable {
		t.Fatalf("/readyz after the failed calls: %d, want 503 (Redis is still down)", st)
	}

	r.Restart(t)
	a.waitReady(t)
	// The first publication of each topic in the new Redis: s 1 of a new
	// epoch; every subscriber is reset at it before more come.
	after := map[string]pos{}
	for _, name := range topics {
		p := led.publishHTTP(t, a, name, payload(name+".new", 1), name == snapT)
		if p.S != 1 || p.E == before[name].E {
			t.Fatalf("first publish of %s after Redis came back empty → %+v, want s 1 in an epoch other than %s", name, p, before[name].E)
		}
		after[name] = p
	}
	for _, s := range subs {
		s.waitAt(t, after)
	}
	for i := 2; i <= 5; i++ {
		for _, name := range topics {
			after[name] = led.publishCmd(t, prod, name, payload(name+".new", i), false)
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
	late.sub(t, []string{"kill.other"}, nil)
}

// TestRedisSubscriberCutOff: Redis closes the node's subscription
// connection, as it does to any subscriber over its output buffer limit
// (here 1 KiB, with publications of 64 KiB), again and again while a
// producer publishes on another node. The node makes the connection again
// each time and reads the topic again from its stream: its subscriber
// receives every publication in order, or is told (lag, reset) where it
// does not. Nothing is lost silently.
func TestRedisSubscriberCutOff(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	a, b := redisNode(t, r.Addr), redisNode(t, r.Addr)
	led := newLedger()
	const name = "cut.big"
	var subs []*subscriber
	for _, tr := range transports {
		s, _ := subscribe(t, tr.dial(t, a), name)
		subs = append(subs, s)
	}
	connects := a.metric(t, "tickfan_redis_connects_total")

	if got := r.Do(t, "CONFIG", "SET", "client-output-buffer-limit", "pubsub 1024 1024 0"); got != "OK" {
		t.Fatalf("CONFIG SET: %s", got)
	}
	big := strings.Repeat("x", 64<<10)
	const count = 20
	for i := 1; i <= count; i++ {
		led.publishHTTP(t, b, name, map[string]any{"i": i, "pad": big}, i == 10)
	}
	if got := r.Do(t, "CONFIG", "SET", "client-output-buffer-limit", "pubsub 0 0 0"); got != "OK" {
		t.Fatalf("CONFIG SET: %s", got)
	}
	last := led.publishHTTP(t, b, name, map[string]any{"i": "last"}, false)
	if last.S != count+1 {
		t.Fatalf("publication after %d → %+v, want s %d", count, last, count+1)
	}
	for _, s := range subs {
		s.waitAt(t, map[string]pos{name: last})
		s.verify(t, led)
		// The stream's rules held for every message (a gap only after a
		// reset, a lag at the last seq held); without a reset, that is
		// every publication from s 1.
		st := s.streams[name]
		if len(st.resets) == 0 && !slices.Equal(st.seqs(last.E), seqRange(1, last.S)) {
			t.Fatalf("%s: received %v without a reset, want 1..%d", s.c.name, st.seqs(last.E), last.S)
		}
		if len(st.resets) > 0 || len(st.lags) > 0 {
			t.Logf("%s: resets %v, lags %v", s.c.name, st.resets, st.lags)
		}
	}
	now := a.metric(t, "tickfan_redis_connects_total")
	t.Logf("subscription connections made again: %v, repairs: %v", now-connects, a.metric(t, "tickfan_redis_repairs_total"))
	if now < connects+1 {
		t.Fatalf("tickfan_redis_connects_total %v → %v: Redis never cut the subscription connection off, the test tested nothing", connects, now)
	}
	if rep := a.metric(t, "tickfan_redis_repairs_total"); rep == 0 {
		t.Fatal("tickfan_redis_repairs_total is 0 after the subscription connection was made again")
	}
}
