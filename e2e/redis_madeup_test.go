package e2e

import (
	"fmt"
	"testing"

	"github.com/tickfan/tickfan/internal/redistest"
	"github.com/tickfan/tickfan/server"
)

// TestRedisSubsOfMadeUpNamesCostNoTopics: PROTOCOL.md (Subscribe and
// recovery) holds on a Redis node as it does in memory: subscribing to
// names never published costs the node no topics, so clients holding
// more of them than --max-topics are served, and so is a subscriber of
// another new name after them; each gets its topic's first publication
// at s 1.
func TestRedisSubsOfMadeUpNamesCostNoTopics(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	a := redisNode(t, r.Addr, func(c *server.Config) { c.MaxTopics = 5 })
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprintf("made.up.%d", i))
	}
	c := dialTCP(t, a)
	m := c.do(t, map[string]any{"op": "sub", "topics": names})
	if m["err"] != nil {
		t.Fatalf("sub of %d never-published names with --max-topics 5 → %s, want them served (s 0, rec false)", len(names), m)
	}
	late := dialTCP(t, a)
	first := late.sub1(t, "made.up.late", nil)
	if first.S != 0 {
		t.Fatalf("sub of another never-published name → %+v, want s 0", first)
	}
	p := a.publish(t, "made.up.late", 1, false)
	if p != (pos{E: first.E, S: 1}) {
		t.Fatalf("first publication → %+v, want s 1 in %s", p, first.E)
	}
	late.nextPub(t, "made.up.late", 1, 1, false)
}
