package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"

	"github.com/tickfan/tickfan/server"
)

// tryOK sends cmd with a fresh id and returns its result, or why it has
// none; unlike ok it may run in a goroutine of its own.
func (c *client) tryOK(cmd map[string]any) (map[string]any, error) {
	id := c.id()
	cmd["id"] = id
	if err := c.send(cmd); err != nil {
		return nil, err
	}
	m, err := c.recv()
	if err != nil {
		return nil, err
	}
	if err := checkReply(m, id); err != nil {
		return nil, err
	}
	res, ok := m["res"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: %s → %s, want a result", c.name, show(cmd), m)
	}
	return res, nil
}

// randomTopics returns n distinct random topic names.
func randomTopics(n int) []string {
	names := make([]string, n)
	var b [8]byte
	for i := range names {
		_, _ = rand.Read(b[:])
		names[i] = "rnd." + hex.EncodeToString(b[:])
	}
	return names
}

// subUnsubRound subscribes c to names in one sub, checks every topic is
// answered as never published (s 0 in epoch), and leaves them in one unsub.
func subUnsubRound(c *client, names []string, epoch string, hold func()) error {
	res, err := c.tryOK(map[string]any{"op": "sub", "topics": names})
	if err != nil {
		return fmt.Errorf("sub of %d new topics: %w", len(names), err)
	}
	if len(res) != len(names) {
		return fmt.Errorf("sub of %d topics answered %d", len(names), len(res))
	}
	for _, name := range names {
		p, err := asPos(res[name], "rec")
		if err != nil {
			return fmt.Errorf("sub reply for %s: %w", name, err)
		}
		if p.E != epoch || p.S != 0 || res[name].(map[string]any)["rec"] != false {
			return fmt.Errorf("sub reply for never-published %s: %s, want e %q, s 0, rec false", name, show(res[name]), epoch)
		}
	}
	hold()
	if _, err := c.tryOK(map[string]any{"op": "unsub", "topics": names}); err != nil {
		return fmt.Errorf("unsub of %d topics: %w", len(names), err)
	}
	return nil
}

// TestAnonymousSubsCreateNoTopics: anonymous clients subscribing to and
// leaving any number of names never published create no topic, so they
// cannot fill the node's topic table (--max-topics) and lock producers out
// of new topics. A topic is created by its first publication, which reaches
// the clients already subscribed to it at s 1.
func TestAnonymousSubsCreateNoTopics(t *testing.T) {
	t.Parallel()
	const conns, names, batch = 4, 20_000, 1000 // batch: the default --max-subs
	n := start(t, func(c *server.Config) { c.MaxTopics = 5 })

	// A subscriber that waits for a topic's first publication.
	waiter := dialWS(t, n, protoJSON)
	w := waiter.sub1(t, "trade.first", nil)
	if w.S != 0 || w.Rec {
		t.Fatalf("sub of a never-published topic: %+v, want s 0, rec false", w)
	}

	clients := make([]*client, conns)
	for i := range clients {
		clients[i] = dialWS(t, n, protoJSON)
	}
	for round := 0; round < names/(conns*batch); round++ {
		var (
			held, done sync.WaitGroup
			mu         sync.Mutex
			errs       []error
		)
		held.Add(conns)
		release := make(chan struct{})
		for _, c := range clients {
			done.Add(1)
			go func() {
				defer done.Done()
				once := sync.OnceFunc(held.Done)
				defer once()
				err := subUnsubRound(c, randomTopics(batch), w.E, func() { once(); <-release })
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
					mu.Unlock()
				}
			}()
		}
		held.Wait() // every client holds its batch (or failed)
		topicsHeld := metricValue(t, n, "tickfan_topics")
		close(release)
		done.Wait()
		for _, err := range errs {
			t.Errorf("round %d: %v", round, err)
		}
		if t.Failed() {
			t.FailNow()
		}
		if topicsHeld != 0 {
			t.Fatalf("round %d: tickfan_topics %v while %d never-published topics are subscribed, want 0", round, topicsHeld, conns*batch)
		}
	}
	if v := metricValue(t, n, "tickfan_topics"); v != 0 {
		t.Fatalf("tickfan_topics %v after %d names subscribed and left, want 0", v, names)
	}

	// The table is whole: --max-topics (5) new topics can be published,
	// the first of them the one the waiter holds.
	for i, name := range []string{"trade.first", "new.1", "new.2", "new.3", "new.4"} {
		p := n.publish(t, name, payload("new", i), false)
		if p.S != 1 || p.E != w.E {
			t.Fatalf("first publication of %s at %+v, want s 1 in epoch %q", name, p, w.E)
		}
	}
	waiter.nextPub(t, "trade.first", 1, payload("new", 0), false)
	n.publish(t, "trade.first", payload("new", 5), false)
	waiter.nextPub(t, "trade.first", 2, payload("new", 5), false)
	expectHTTPErr(t, "publish to a 6th topic with --max-topics 5", n.publishBody(t, item("new.6", 1, false)), 429)
	if v := metricValue(t, n, "tickfan_topics"); v != 5 {
		t.Fatalf("tickfan_topics %v after 5 new topics, want 5", v)
	}

	// At the limit, subscribers of never-published topics are still served.
	c := dialTCP(t, n)
	c.sub(t, randomTopics(batch-1), nil) // and one more below: --max-subs
	if r := c.sub1(t, "new.6", &pos{E: w.E, S: 0}); r.S != 0 || r.E != w.E || !r.Rec {
		t.Fatalf("sub since s 0 of a never-published topic: %+v, want s 0 in %q, rec true", r, w.E)
	}
	waiter.alive(t)
}
