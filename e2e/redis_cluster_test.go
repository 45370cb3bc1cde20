package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tickfan/tickfan/internal/redistest"
)

// TestRedisCluster: two nodes on a Redis Cluster of three masters, with
// topics whose keys lie on every master. A client subscribes on node A,
// producers publish on node B (HTTP and pub): every publication arrives
// in order, in the epoch the sub replies gave, on both nodes. The nodes
// use sharded pub/sub only (SPUBLISH, SSUBSCRIBE; their probes too):
// Redis counts no PUBLISH or SUBSCRIBE, which a cluster would broadcast
// to every master.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	cl.ResetStats(t)
	addrs := strings.Join(cl.Addrs, ",")
	a, b := redisNode(t, addrs), redisNode(t, addrs)

	// Two topics on each master (the keys of topic T have the hash tag {T}).
	perMaster := map[string][]string{}
	var topics []string
	for i := 0; len(topics) < 2*len(cl.Nodes); i++ {
		name := fmt.Sprintf("cl.%d", i)
		owner := cl.Owner(t, "tf:{"+name+"}").Addr
		if len(perMaster[owner]) < 2 {
			perMaster[owner] = append(perMaster[owner], name)
			topics = append(topics, name)
		}
		if i > 1000 {
			t.Fatalf("no 2 topics on each master among 1000 names: %v", perMaster)
		}
	}

	led := newLedger()
	var subs []*subscriber
	var first map[string]pos
	for _, n := range []*node{a, b} {
		for _, tr := range transports {
			s, at := subscribe(t, tr.dial(t, n), topics...)
			subs = append(subs, s)
			if first == nil {
				first = at
			}
			for _, name := range topics {
				if at[name].S != 0 || at[name] != first[name] {
					t.Fatalf("%s: sub %s → %+v, want s 0 in the epoch the first subscriber got, %+v", tr.name, name, at[name], first[name])
				}
			}
		}
	}
	prod := dialTCP(t, b)
	want := map[string]pos{}
	for i := 1; i <= 10; i++ {
		for _, name := range topics {
			if i%2 == 0 {
				want[name] = led.publishHTTP(t, b, name, payload(name, i), i == 4)
			} else {
				want[name] = led.publishCmd(t, prod, name, payload(name, i), false)
			}
			if want[name].E != first[name].E {
				t.Fatalf("publish %s → %+v, want the epoch of the sub replies, %s", name, want[name], first[name].E)
			}
		}
	}
	for _, s := range subs {
		s.waitAt(t, want)
		s.verify(t, led)
		for _, name := range topics {
			if got := s.streams[name].seqs(want[name].E); !slices.Equal(got, seqRange(1, 10)) {
				t.Fatalf("%s: %s received %v, want 1..10", s.c.name, name, got)
			}
		}
	}

	// Each node's probe goes out at least every second; wait for probes
	// to be counted so that their command is seen too.
	var stats map[string]int64
	pollUntil(t, "the nodes' probes counted", func() (bool, string) {
		stats = cl.CommandStats(t)
		return stats["spublish"] > int64(len(topics)*10), fmt.Sprint(stats)
	})
	t.Logf("cluster commandstats: %v", stats)
	for _, cmd := range []string{"publish", "subscribe"} {
		if stats[cmd] != 0 {
			t.Errorf("Redis Cluster counted %d %s: want sharded pub/sub only (%v)", stats[cmd], cmd, stats)
		}
	}
	if stats["ssubscribe"] == 0 {
		t.Errorf("Redis Cluster counted no ssubscribe (%v)", stats)
	}
	for _, s := range cl.Nodes {
		if st := s.CommandStats(t); st["spublish"] == 0 || st["ssubscribe"] == 0 {
			t.Errorf("master %s counted spublish %d, ssubscribe %d: want both on every master (its topics and its probes)", s.Addr, st["spublish"], st["ssubscribe"])
		}
	}
}
