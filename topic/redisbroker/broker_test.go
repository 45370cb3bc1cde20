package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tickfan/tickfan/internal/redistest"
	"github.com/tickfan/tickfan/topic"
)

// node is one tickfan node's topic side: an engine in Held mode fed by a
// broker, and a sink that records what reaches its (one) loop.
type node struct {
	e    *topic.Engine
	b    *Broker
	sink *recSink
}

type recSink struct {
	mu   sync.Mutex
	pubs map[string][]*topic.Publication
}

func (s *recSink) Enqueue(_ int, p *topic.Publication) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pubs[p.Topic] = append(s.pubs[p.Topic], p)
}

func (s *recSink) got(name string) []*topic.Publication {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*topic.Publication(nil), s.pubs[name]...)
}

func newNode(t *testing.T, cfg Config) *node {
	t.Helper()
	n := &node{sink: &recSink{pubs: map[string][]*topic.Publication{}}}
	n.e = topic.NewEngine(topic.EngineConfig{Held: true, HistorySize: cfg.HistorySize, Idle: func(name string) { n.b.Idle(name) }}, n.sink)
	if cfg.Probe == 0 {
		cfg.Probe = 100 * time.Millisecond
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Second
	}
	b, err := New(cfg, n.e)
	if err != nil {
		t.Fatal(err)
	}
	n.b = b
	t.Cleanup(func() { _ = b.Close() })
	return n
}

// follow follows and subscribes to the topics (one subscriber each).
func (n *node) follow(t *testing.T, names ...string) {
	t.Helper()
	done := make(chan error, 1)
	n.b.Follow(names, func(err error) { done <- err })
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Follow %v: %v", names, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Follow %v: no answer", names)
	}
	for _, name := range names {
		if _, err := n.e.Subscribe(name, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func (n *node) publish(t *testing.T, name, data string, snap bool) topic.Position {
	t.Helper()
	pos, err := n.b.Publish(context.Background(), []topic.PublishRequest{{Topic: name, Data: []byte(data), Snap: snap}})
	if err != nil {
		t.Fatalf("publish %s: %v", name, err)
	}
	return pos[0]
}

// waitFor polls cond until it holds, at most 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// contiguous checks that pubs run from seq from on, without a gap, in one
// epoch, and returns their data.
func contiguous(t *testing.T, pubs []*topic.Publication, from uint64) []string {
	t.Helper()
	var data []string
	for i, p := range pubs {
		if p.Seq != from+uint64(i) || p.Epoch != pubs[0].Epoch {
			t.Fatalf("publication %d is %s/%d, want %s/%d", i, p.Epoch, p.Seq, pubs[0].Epoch, from+uint64(i))
		}
		data = append(data, string(p.Data))
	}
	return data
}

func TestTwoNodesOneOrder(t *testing.T) {
	r := redistest.Start(t)
	a, b := newNode(t, Config{Addrs: []string{r.Addr}}), newNode(t, Config{Addrs: []string{r.Addr}})
	a.follow(t, "book.x")
	b.follow(t, "book.x")
	const each = 300
	var wg sync.WaitGroup
	for i, n := range []*node{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				n.publish(t, "book.x", fmt.Sprintf(`"%d-%d"`, i, j), false)
			}
		}()
	}
	wg.Wait()
	waitFor(t, "every publication on both nodes", func() bool {
		return len(a.sink.got("book.x")) == 2*each && len(b.sink.got("book.x")) == 2*each
	})
	da, db := contiguous(t, a.sink.got("book.x"), 1), contiguous(t, b.sink.got("book.x"), 1)
	if strings.Join(da, ",") != strings.Join(db, ",") {
		t.Fatal("the two nodes saw different orders")
	}
	if ea, eb := a.sink.got("book.x")[0].Epoch, b.sink.got("book.x")[0].Epoch; ea != eb {
		t.Fatalf("epochs differ: %s and %s", ea, eb)
	}
}

func TestFollowedTopicNeverPublished(t *testing.T) {
	r := redistest.Start(t)
	a, b := newNode(t, Config{Addrs: []string{r.Addr}}), newNode(t, Config{Addrs: []string{r.Addr}})
	a.follow(t, "t")
	pa, _ := a.e.Held("t")
	if pa.Seq != 0 || pa.Epoch == "" {
		t.Fatalf("a topic never published is held at %+v", pa)
	}
	pos := b.publish(t, "t", `1`, false)
	if pos.Epoch != pa.Epoch || pos.Seq != 1 {
		t.Fatalf("the first publication is %+v; its subscribers were told epoch %s", pos, pa.Epoch)
	}
	if ttl := r.Int(t, "TTL", metaKey("t")); ttl != -1 {
		t.Fatalf("a published topic's hash has TTL %d, want none", ttl)
	}
}

func TestGapRepairedFromStream(t *testing.T) {
	r := redistest.Start(t)
	a := newNode(t, Config{Addrs: []string{r.Addr}})
	a.follow(t, "g")
	a.publish(t, "g", `1`, false)
	// Two publications placed by the script but sent to a channel nobody
	// follows: node a misses them, as after a lost message.
	for _, d := range []string{`2`, `3`} {
		r.Do(t, "EVALSHA", a.b.pubLua.sha, "2", metaKey("g"), streamKey("g"), "elsewhere", d, "", "1000", "x", "", "")
	}
	a.publish(t, "g", `4`, true)
	waitFor(t, "the gap repaired", func() bool { return len(a.sink.got("g")) == 4 })
	if got := contiguous(t, a.sink.got("g"), 1); strings.Join(got, ",") != "1,2,3,4" {
		t.Fatalf("after the repair: %v", got)
	}
	if a.b.Stats().Gaps.Load() == 0 {
		t.Fatal("no repair counted")
	}
}

func TestRedisRestartMidStream(t *testing.T) {
	r := redistest.Start(t)
	a := newNode(t, Config{Addrs: []string{r.Addr}})
	a.follow(t, "k")
	first := a.publish(t, "k", `1`, false)
	waitFor(t, "the first publication", func() bool { return len(a.sink.got("k")) == 1 })
	r.Kill()
	waitFor(t, "Ready to report the outage", func() bool { return a.b.Ready() != nil })
	if !errors.Is(a.b.Ready(), topic.ErrUnavailable) {
		t.Fatalf("Ready: %v", a.b.Ready())
	}
	_, err := a.b.Publish(context.Background(), []topic.PublishRequest{{Topic: "k", Data: []byte(`2`)}})
	if !errors.Is(err, topic.ErrUnavailable) {
		t.Fatalf("publish while Redis is down: %v, want ErrUnavailable", err)
	}
	if _, held := a.e.Held("k"); !held {
		t.Fatal("the topic was let go during the outage")
	}
	r.Restart(t) // empty: the topic's history is gone
	waitFor(t, "Ready after Redis came back", func() bool { return a.b.Ready() == nil })
	waitFor(t, "the topic read again in a new epoch", func() bool {
		pos, _ := a.e.Held("k")
		return pos.Epoch != first.Epoch
	})
	pos := a.publish(t, "k", `3`, false)
	if pos.Epoch == first.Epoch || pos.Seq != 1 {
		t.Fatalf("after the restart: %+v (was %+v)", pos, first)
	}
	waitFor(t, "the new epoch's publication", func() bool { return len(a.sink.got("k")) >= 2 })
	got := a.sink.got("k")
	if last := got[len(got)-1]; last.Epoch != pos.Epoch || last.Seq != 1 {
		t.Fatalf("last delivered %s/%d", last.Epoch, last.Seq)
	}
}

func TestProbeFindsAStalledRedis(t *testing.T) {
	r := redistest.Start(t)
	a := newNode(t, Config{Addrs: []string{r.Addr}, Probe: 50 * time.Millisecond, Timeout: 300 * time.Millisecond})
	a.follow(t, "p")
	r.Pause()
	waitFor(t, "Ready to report the stalled Redis", func() bool { return a.b.Ready() != nil })
	r.Resume()
	waitFor(t, "Ready again", func() bool { return a.b.Ready() == nil })
	a.publish(t, "p", `1`, false)
	waitFor(t, "delivery after the stall", func() bool { return len(a.sink.got("p")) == 1 })
}

func TestSubscriberCutOffByRedisIsRepaired(t *testing.T) {
	r := redistest.Start(t)
	a, b := newNode(t, Config{Addrs: []string{r.Addr}}), newNode(t, Config{Addrs: []string{r.Addr}})
	a.follow(t, "big")
	// Redis drops a subscriber whose output buffer passes 1 KiB: a
	// subscriber cut off as a slow one is, in production.
	r.Do(t, "CONFIG", "SET", "client-output-buffer-limit", "pubsub 1024 1024 0")
	big := `"` + strings.Repeat("x", 64<<10) + `"`
	const n = 20
	for i := range n {
		b.publish(t, "big", big[:len(big)-1]+strconv.Itoa(i)+`"`, false)
	}
	r.Do(t, "CONFIG", "SET", "client-output-buffer-limit", "pubsub 0 0 0")
	b.publish(t, "big", `"last"`, false)
	waitFor(t, "every publication after the cut", func() bool { return len(a.sink.got("big")) == n+1 })
	contiguous(t, a.sink.got("big"), 1)
	if a.b.Stats().Rebuilds.Load() < 2 {
		t.Fatalf("the subscription connection was made %d times; Redis cut it off", a.b.Stats().Rebuilds.Load())
	}
}

func TestWatchedKeyOnePublicationPerChange(t *testing.T) {
	r := redistest.Start(t)
	cfg := Config{Addrs: []string{r.Addr}, Watch: []Watch{{Topic: "ticker.x", Key: "px"}}, WatchInterval: 10 * time.Millisecond}
	a, b := newNode(t, cfg), newNode(t, cfg)
	a.follow(t, "ticker.x")
	r.Do(t, "SET", "px", `{"p":1}`)
	waitFor(t, "the first value", func() bool { return len(a.sink.got("ticker.x")) == 1 })
	time.Sleep(100 * time.Millisecond) // several reads of an unchanged value
	r.Do(t, "SET", "px", `plain`)
	waitFor(t, "the second value", func() bool { return len(a.sink.got("ticker.x")) == 2 })
	time.Sleep(100 * time.Millisecond)
	got := a.sink.got("ticker.x")
	if len(got) != 2 || string(got[0].Data) != `{"p":1}` || string(got[1].Data) != `"plain"` || !got[1].Snap {
		t.Fatalf("watched publications: %d, want 2 snapshots", len(got))
	}
	contiguous(t, got, 1)
	if refused := a.b.Stats().Refused.Load() + b.b.Stats().Refused.Load(); refused == 0 {
		t.Fatal("two nodes watch one key and neither was refused a duplicate")
	}
}

func TestHerdOfFollowsIsCoalesced(t *testing.T) {
	r := redistest.Start(t)
	a := newNode(t, Config{Addrs: []string{r.Addr}})
	const topics, clients = 100, 10000
	for i := range topics {
		a.publish(t, fmt.Sprintf("h.%d", i), `1`, false)
	}
	r.ResetStats(t)
	var wg sync.WaitGroup
	wg.Add(clients)
	errs := make(chan error, clients)
	for i := range clients {
		a.b.Follow([]string{fmt.Sprintf("h.%d", i%topics)}, func(err error) {
			if err != nil {
				errs <- err
			}
			wg.Done()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	stats := r.CommandStats(t)
	if reads := stats["evalsha"]; reads != topics {
		t.Fatalf("%d clients following %d topics cost %d reads, want %d", clients, topics, reads, topics)
	}
	if subs := stats["subscribe"]; subs > 10 {
		t.Fatalf("SUBSCRIBE sent %d times for %d topics: not batched", subs, topics)
	}
	t.Logf("commandstats: %v", stats)
}

func TestLingerThenLetGo(t *testing.T) {
	r := redistest.Start(t)
	a := newNode(t, Config{Addrs: []string{r.Addr}, Linger: 100 * time.Millisecond})
	a.follow(t, "l")
	a.e.Unsubscribe("l", 0)
	waitFor(t, "the topic let go", func() bool { _, held := a.e.Held("l"); return !held && a.b.Following() == 0 })
	waitFor(t, "the channel unsubscribed", func() bool {
		for _, ch := range r.Strings(t, "PUBSUB", "CHANNELS") {
			if ch == channelOf("l") {
				return false
			}
		}
		return true
	})
}

func TestClusterTwoNodes(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	a, b := newNode(t, Config{Addrs: c.Addrs}), newNode(t, Config{Addrs: c.Addrs[1:]})
	if !a.b.Cluster() || len(a.b.shards) != 3 {
		t.Fatalf("cluster %v with %d subscription connections", a.b.Cluster(), len(a.b.shards))
	}
	names := []string{"c.a", "c.b", "c.c", "c.d", "c.e", "c.f"}
	a.follow(t, names...)
	b.follow(t, names...)
	for i := range 50 {
		for _, name := range names {
			[]*node{a, b}[i%2].publish(t, name, strconv.Itoa(i), false)
		}
	}
	for _, name := range names {
		waitFor(t, "every publication of "+name, func() bool {
			return len(a.sink.got(name)) == 50 && len(b.sink.got(name)) == 50
		})
		if strings.Join(contiguous(t, a.sink.got(name), 1), ",") != strings.Join(contiguous(t, b.sink.got(name), 1), ",") {
			t.Fatalf("%s: the nodes saw different orders", name)
		}
	}
	stats := c.CommandStats(t)
	if stats["spublish"] == 0 || stats["ssubscribe"] == 0 || stats["publish"] > 0 {
		t.Fatalf("sharded pub/sub not used: %v", stats)
	}
	c.FlushAll(t)
	pos := a.publish(t, "c.a", `"after"`, false)
	if pos.Seq != 1 || pos.Epoch == a.sink.got("c.a")[0].Epoch {
		t.Fatalf("after FLUSHALL: %+v", pos)
	}
}

func TestBatchIsOnePipelineAndNoScriptReloads(t *testing.T) {
	r := redistest.Start(t)
	a := newNode(t, Config{Addrs: []string{r.Addr}})
	reqs := make([]topic.PublishRequest, 200)
	for i := range reqs {
		reqs[i] = topic.PublishRequest{Topic: fmt.Sprintf("batch.%d", i%50), Data: []byte(strconv.Itoa(i))}
	}
	before := a.b.Stats().Pipelines.Load()
	pos, err := a.b.Publish(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if n := a.b.Stats().Pipelines.Load() - before; n > Shards {
		t.Fatalf("a batch of %d went out in %d pipelines, want at most %d (one per publishing goroutine)", len(reqs), n, Shards)
	}
	for i, p := range pos {
		if want := uint64(i/50 + 1); p.Seq != want {
			t.Fatalf("publication %d placed at %d, want %d: a topic's publications keep their order", i, p.Seq, want)
		}
	}
	// Redis forgets its scripts (a restart, SCRIPT FLUSH): the next
	// publication loads them again instead of failing.
	r.Do(t, "SCRIPT", "FLUSH")
	if p := a.publish(t, "batch.0", `"again"`, false); p.Seq != 5 {
		t.Fatalf("after SCRIPT FLUSH: %+v", p)
	}
	stats := r.CommandStats(t)
	if stats["script|load"] == 0 {
		t.Fatalf("no SCRIPT LOAD after NOSCRIPT: %v", stats)
	}
}

func TestCloseLeavesNoGoroutine(t *testing.T) {
	r := redistest.Start(t)
	base := runtime.NumGoroutine()
	for range 3 {
		n := newNode(t, Config{Addrs: []string{r.Addr}, Watch: []Watch{{Topic: "w", Key: "w"}}})
		n.follow(t, "x", "y")
		n.publish(t, "x", `1`, false)
		r.Kill()
		waitFor(t, "the outage seen", func() bool { return n.b.Ready() != nil })
		r.Restart(t)
		waitFor(t, "Ready again", func() bool { return n.b.Ready() == nil })
		if err := n.b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the broker's goroutines to end", func() bool { return runtime.NumGoroutine() <= base+2 })
}

func TestPlaceholderLivesWhileFollowed(t *testing.T) {
	r := redistest.Start(t)
	const ttl = 300 * time.Millisecond
	a := newNode(t, Config{Addrs: []string{r.Addr}, PlaceholderTTL: ttl, Linger: 50 * time.Millisecond, Probe: 30 * time.Millisecond})
	a.follow(t, "never")
	told, _ := a.e.Held("never")
	if a.e.Topics() != 0 {
		t.Fatalf("a name nobody published to counts as %d topics", a.e.Topics())
	}
	// Followed for several lifetimes of the placeholder: it is renewed.
	deadline := time.Now().Add(4 * ttl)
	for time.Now().Before(deadline) {
		if r.Int(t, "EXISTS", metaKey("never")) != 1 {
			t.Fatal("the placeholder of a followed name expired")
		}
		time.Sleep(ttl / 4)
	}
	if pos := a.publish(t, "never", `1`, false); pos != (topic.Position{Epoch: told.Epoch, Seq: 1}) {
		t.Fatalf("first publication %+v, its subscriber was told %s", pos, told.Epoch)
	}
	// Once nobody follows a name, its placeholder goes.
	a.follow(t, "gone")
	a.e.Unsubscribe("gone", 0)
	waitFor(t, "the unfollowed placeholder to expire", func() bool { return r.Int(t, "EXISTS", metaKey("gone")) == 0 })
}

func TestClusterWatchedKeysOnSeveralSlots(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	keys := []string{"px:a", "px:b", "px:c", "px:d"} // spread over the masters' slots
	var watch []Watch
	for i, k := range keys {
		watch = append(watch, Watch{Topic: fmt.Sprintf("ticker.%d", i), Key: k})
	}
	a := newNode(t, Config{Addrs: c.Addrs, Watch: watch, WatchInterval: 10 * time.Millisecond})
	owners := map[string]bool{}
	for i, k := range keys {
		owners[c.Owner(t, k).Addr] = true
		a.follow(t, fmt.Sprintf("ticker.%d", i))
	}
	if len(owners) < 2 {
		t.Fatalf("the watched keys all live on one master: %v", owners)
	}
	for i, k := range keys {
		c.Owner(t, k).Do(t, "SET", k, strconv.Itoa(i))
	}
	for i := range keys {
		name := fmt.Sprintf("ticker.%d", i)
		waitFor(t, "the watched value of "+name, func() bool { return len(a.sink.got(name)) == 1 })
		if p := a.sink.got(name)[0]; string(p.Data) != strconv.Itoa(i) || !p.Snap {
			t.Fatalf("%s: %q snap %v", name, p.Data, p.Snap)
		}
	}
	if mget := c.CommandStats(t)["mget"]; mget == 0 {
		t.Fatal("no MGET on the cluster")
	}
}
