package e2e

import (
	"github.com/tickfan/tickfan/server"

	"fmt"
	"testing"
)

// TestHugeSubRefusedAtOnce: a sub naming 100,000 topics (about 1 MB) is
// refused with 429 by its count, before any per-topic work, so it cannot
// stall the loop that serves other clients: two of them in flight, a
// healthy subscriber still gets its publications within the usual read
// deadline. Duplicates in a long list are found with a map.
func TestHugeSubRefusedAtOnce(t *testing.T) {
	t.Parallel()
	n := start(t, func(c *server.Config) { c.MaxFrame, c.AnonMaxFrame = 4<<20, 4<<20 })
	check := healthy(t, n)
	names := make([]string, 100_000)
	for i := range names {
		names[i] = fmt.Sprintf("huge.topic.%06d", i)
	}
	var clients []*client
	for _, tr := range transports[1:] { // msgpack: ws and tcp
		c := tr.dial(t, n)
		c.mustSend(t, map[string]any{"op": "sub", "id": 1, "topics": names})
		clients = append(clients, c)
	}
	check()
	for _, c := range clients {
		m := c.next(t)
		if err := checkReply(m, 1); err != nil {
			t.Fatal(err)
		}
		if err := checkErr(m, 429); err != nil {
			t.Fatal(err)
		}
		// Within the limit, a duplicate far down the list is found.
		dup := append(append([]string(nil), names[:999]...), names[500])
		c.fail(t, map[string]any{"op": "sub", "topics": dup}, 400)
		c.fail(t, map[string]any{"op": "unsub", "topics": names}, 429)
		c.alive(t)
	}
}
