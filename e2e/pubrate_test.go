package e2e

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tickfan/tickfan/server"
)

// producer dials TCP and authenticates with a token whose pub claim
// grants prod.>.
func producer(t *testing.T, n *node) *client {
	t.Helper()
	c := dialTCP(t, n)
	c.ok(t, map[string]any{"op": "auth", "token": hsToken(t, jwt.MapClaims{
		"sub": "feed", "exp": time.Now().Add(time.Hour).Unix(), "pub": []string{"prod.>"}})})
	return c
}

// pubBurst writes count pub commands back to back in one write and
// returns the replies in order (read while the write goes on).
func pubBurst(t *testing.T, c *client, topic string, count int) []msg {
	t.Helper()
	cmds := make([]map[string]any, count)
	for i := range cmds {
		cmds[i] = map[string]any{"op": "pub", "id": i + 1, "t": topic, "d": i + 1}
	}
	werr, err := c.writeBurst(cmds)
	if err != nil {
		t.Fatal(err)
	}
	replies := make([]msg, 0, count)
	for len(replies) < count {
		m, err := c.recv()
		if err != nil {
			t.Fatalf("reply %d of %d: %v", len(replies)+1, count, err)
		}
		replies = append(replies, m)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	return replies
}

// TestProducerPubNotCommandRated: with the default --cmd-rate (100/s), a
// producer whose token grants the topic publishes 10,000 messages back to
// back over TCP and every one is accepted, in order, with no gap.
func TestProducerPubNotCommandRated(t *testing.T) {
	t.Parallel()
	n := start(t, withJWT, func(c *server.Config) { c.CmdRate = 100 })
	c := producer(t, n)
	const count = 10_000
	for i, m := range pubBurst(t, c, "prod.fast", count) {
		if err := checkReply(m, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
		res, ok := m["res"].(map[string]any)
		if !ok {
			t.Fatalf("pub %d: %s, want a result", i+1, m)
		}
		if s, _ := asUint(res["s"]); s != uint64(i+1) {
			t.Fatalf("pub %d: seq %v, want %d", i+1, res["s"], i+1)
		}
	}
	// Other commands still count against --cmd-rate.
	refused := 0
	for i := 0; i < 150; i++ {
		m := c.do(t, map[string]any{"op": "ping"})
		if _, isErr := m["err"]; isErr {
			if err := checkErr(m, 429); err != nil {
				t.Fatal(err)
			}
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("150 pings back to back under --cmd-rate 100: none refused")
	}
}

// TestPubRate: --pub-rate caps a producer's pubs with 429 (with the id);
// the connection stays and its pubs are accepted again later.
func TestPubRate(t *testing.T) {
	t.Parallel()
	n := start(t, withJWT, func(c *server.Config) { c.CmdRate = 100; c.PubRate = 50 })
	c := producer(t, n)
	accepted, refused := 0, 0
	for i, m := range pubBurst(t, c, "prod.capped", 200) {
		if err := checkReply(m, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
		if _, isErr := m["err"]; isErr {
			if err := checkErr(m, 429); err != nil {
				t.Fatal(err)
			}
			refused++
		} else {
			accepted++
		}
	}
	if refused == 0 || accepted < 50 {
		t.Fatalf("200 pubs back to back under --pub-rate 50: %d accepted, %d refused", accepted, refused)
	}
	c.alive(t)
}

// TestAnonymousPubIsCommandRated: a pub without a token (--anonymous-pub)
// is an ordinary command of the rate limit.
func TestAnonymousPubIsCommandRated(t *testing.T) {
	t.Parallel()
	n := start(t, func(c *server.Config) { c.CmdRate = 100 })
	c := dialTCP(t, n)
	refused := 0
	for i, m := range pubBurst(t, c, "anon.pub", 150) {
		if err := checkReply(m, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
		if _, isErr := m["err"]; isErr {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("150 anonymous pubs under --cmd-rate 100: none refused")
	}
}
