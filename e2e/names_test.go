package e2e

import (
	"net/http"
	"testing"
)

// emptySegmentNames break the name rule of PROTOCOL.md only by an empty
// segment: every byte is allowed, but no pattern can match them and no
// token can grant them.
var emptySegmentNames = []string{"bad..topic", ".a", "a.", ".", "a...b"}

// TestNamesWithEmptySegments checks that sub, pub and pull of a topic name
// with an empty segment answer 400 with the request's id on every
// transport, that a sub naming one among good topics is refused whole, and
// that the connection stays.
func TestNamesWithEmptySegments(t *testing.T) {
	n := start(t)
	eachTransport(t, func(t *testing.T, tr transport) {
		c := tr.dial(t, n)
		for _, bad := range emptySegmentNames {
			c.fail(t, map[string]any{"op": "sub", "topics": []string{bad}}, 400)
			c.fail(t, map[string]any{"op": "pub", "t": bad, "d": 1}, 400)
			c.fail(t, map[string]any{"op": "pull", "t": bad, "since": pos{E: "x", S: 0}.since()}, 400)
		}
		good := topicFor(tr, "names.good")
		c.fail(t, map[string]any{"op": "sub", "topics": []string{good, "bad..topic"}}, 400)
		expectNotSubscribed(t, n, c, good)
		c.alive(t)
	})
}

// TestHTTPPublishNamesWithEmptySegments checks POST /api/publish refuses
// such a name with 400, alone or in a batch, and publishes nothing.
func TestHTTPPublishNamesWithEmptySegments(t *testing.T) {
	t.Parallel()
	n := start(t)
	const good = "http.names"
	first := n.publish(t, good, 0, false)
	for _, bad := range emptySegmentNames {
		r := n.publishBody(t, item(bad, 1, false))
		expectHTTPErr(t, "publish "+bad, r, http.StatusBadRequest)
		r = n.publishBody(t, map[string]any{"batch": []any{item(good, 1, false), item(bad, 2, false)}})
		expectHTTPErr(t, "batch with "+bad, r, http.StatusBadRequest)
	}
	if p := n.publish(t, good, 1, false); p != (pos{E: first.E, S: 2}) {
		t.Fatalf("publish after refused requests → %+v, want s 2", p)
	}
}
