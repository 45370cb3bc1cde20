package e2e

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tickfan/tickfan/internal/redistest"
	"github.com/tickfan/tickfan/server"
)

// TestRedisWatchedKey: two nodes watch the Redis key px as the topic
// ticker.w. Each change of px is published once, as a snapshot (k:"snap")
// whose d is the value (JSON as is, anything else as a JSON string),
// although both nodes see it: subscribers on either node receive one
// snapshot per change with contiguous seqs, and none for a SET that
// leaves the value as it was.
//
// That an unchanged SET was read by both nodes is known from a second
// watched key, px2, set after it: the nodes read all their keys in one
// MGET, so a node that has acted on px2's new value has read px after the
// unchanged SET too.
func TestRedisWatchedKey(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	watch := func(c *server.Config) {
		c.Watch = []string{"ticker.w=px", "ticker.w2=px2"}
		c.WatchInterval = 20 * time.Millisecond
	}
	nodes := []*node{redisNode(t, r.Addr, watch), redisNode(t, r.Addr, watch)}
	topics := []string{"ticker.w", "ticker.w2"}
	var subs []*subscriber
	var first map[string]pos
	for _, n := range nodes {
		for _, tr := range []transport{transports[0], transports[2]} {
			s, at := subscribe(t, tr.dial(t, n), topics...)
			subs = append(subs, s)
			if first == nil {
				first = at
			}
			if !reflect.DeepEqual(at, first) {
				t.Fatalf("sub %v → %v, the first subscriber got %v: want one epoch at s 0", topics, at, first)
			}
		}
	}

	// attempts is how many changes the nodes acted on: each node publishes
	// every change it reads, and Redis places it or refuses it as equal to
	// the snapshot stored.
	attempts := func() (placed, refused float64) {
		for _, n := range nodes {
			m := n.metrics(t)
			placed += m.sum("tickfan_redis_published_total")
			refused += m.sum("tickfan_redis_watch_unchanged_total")
		}
		return placed, refused
	}
	changes := 0
	want := map[string]pos{"ticker.w": first["ticker.w"], "ticker.w2": first["ticker.w2"]}
	var values []any // ticker.w's publications, as d
	set := func(topic, key, value string, d any) {
		t.Helper()
		if got := r.Do(t, "SET", key, value); got != "OK" {
			t.Fatalf("SET %s: %s", key, got)
		}
		changes++
		want[topic] = pos{E: want[topic].E, S: want[topic].S + 1}
		if topic == "ticker.w" {
			values = append(values, normalize(d))
		}
		pollUntil(t, fmt.Sprintf("both nodes acting on %s=%s", key, value), func() (bool, string) {
			placed, refused := attempts()
			return placed+refused == float64(2*changes), fmt.Sprintf("%v placed and %v refused after %d changes", placed, refused, changes)
		})
		for _, s := range subs {
			s.waitAt(t, want)
		}
	}
	unchanged := func(key, value string, sentinel int) {
		t.Helper()
		if got := r.Do(t, "SET", key, value); got != "OK" {
			t.Fatalf("SET %s: %s", key, got)
		}
		set("ticker.w2", "px2", fmt.Sprint(sentinel), sentinel)
	}
	set("ticker.w", "px", `{"p":1}`, map[string]any{"p": 1})
	unchanged("px", `{"p":1}`, 1)
	set("ticker.w", "px", `plain`, "plain")
	set("ticker.w", "px", `2`, 2)
	unchanged("px", `2`, 2)
	unchanged("px", `2`, 3)
	set("ticker.w", "px", `{"p":3,"q":[1,2]}`, map[string]any{"p": 3, "q": []any{1, 2}})

	placed, refused := attempts()
	if placed != float64(changes) || refused != float64(changes) {
		t.Fatalf("%d changes read by two nodes: %v placed, %v refused; want each placed once and refused once", changes, placed, refused)
	}
	for _, s := range subs {
		st := s.streams["ticker.w"]
		if got := st.seqs(want["ticker.w"].E); !slices.Equal(got, seqRange(1, uint64(len(values)))) {
			t.Fatalf("%s: ticker.w seqs %v, want 1..%d: one publication per change", s.c.name, got, len(values))
		}
		for i, g := range st.got {
			if !g.snap || !reflect.DeepEqual(g.d, values[i]) {
				t.Fatalf("%s: ticker.w s %d: %s (snapshot %v), want the snapshot %s", s.c.name, g.S, show(g.d), g.snap, show(values[i]))
			}
		}
	}
}
