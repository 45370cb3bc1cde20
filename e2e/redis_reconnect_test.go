package e2e

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/tickfan/tickfan/internal/redistest"
)

// TestRedisPublishAfterRedisReturns: Redis is killed and started again
// while no client publishes; once the node is ready again (/readyz 200)
// every publication is placed: none is answered 503 (or 500) because it
// went over a connection to the Redis that died, and /readyz stays 200.
func TestRedisPublishAfterRedisReturns(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	a := redisNode(t, r.Addr)
	prod := dialTCP(t, a)
	for i := range 10 {
		a.publish(t, fmt.Sprintf("back.%d", i), i, false)
		prod.pub(t, fmt.Sprintf("back.%d", i), i, false)
	}

	r.Kill()
	r.Restart(t)
	a.waitReady(t)
	var failed []string
	for i := range 10 {
		name := fmt.Sprintf("back.%d", i)
		if _, err := a.tryPublish(name, i, false); err != nil {
			failed = append(failed, err.Error())
		}
		if m := prod.do(t, map[string]any{"op": "pub", "t": name, "d": i}); m["err"] != nil {
			failed = append(failed, fmt.Sprintf("pub %s: %s", name, m))
		}
	}
	if len(failed) > 0 {
		t.Fatalf("Redis is back and /readyz said so, yet %d of 20 publications failed:\n%v", len(failed), failed)
	}
	if st, body := a.status(t, "/readyz"); st != http.StatusOK {
		t.Fatalf("/readyz after the publications: %d %s, want 200", st, body)
	}
}
