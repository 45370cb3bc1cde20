package topic

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
)

// waitPeak returns the most names any part of the waiting index has held
// since its map was last made: what the index's memory still follows. A
// part keeps a map made for fewer than 64 names.
func waitPeak(e *Engine) int {
	peak := 0
	for i := range e.wait {
		p := &e.wait[i]
		p.mu.Lock()
		peak = max(peak, p.peak, len(p.m))
		p.mu.Unlock()
	}
	return peak
}

// heapAlloc returns the bytes of live heap objects.
func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func randomName(r *rand.Rand) string {
	return fmt.Sprintf("rnd.%016x.%d", r.Uint64(), r.IntN(1000))
}

// Subscribers of names never published, as anonymous clients can send
// without end, must leave nothing behind once they leave: no topic, no
// waiting name, no map grown to their peak.
func TestEngineSubscribeRandomNamesCreatesNoTopics(t *testing.T) {
	const names, held = 100_000, 1000
	sink := newRecordSink()
	e := NewEngine(EngineConfig{Loops: 4, MaxTopics: 10}, sink)
	epoch := current(e, "x").Epoch
	r := rand.New(rand.NewPCG(1, 2))
	batch := make([]string, 0, held)
	for i := 0; i < names; i++ {
		name := randomName(r)
		c, err := e.Subscribe(name, i%4, nil)
		if err != nil {
			t.Fatalf("Subscribe(%q) #%d: %v", name, i, err)
		}
		if c.Pos != (Position{Epoch: epoch}) || c.Recovered || c.Reset || len(c.Backlog) != 0 {
			t.Fatalf("Subscribe(%q) of a topic never published = %+v, want seq 0 in epoch %q and nothing else", name, c, epoch)
		}
		batch = append(batch, name)
		if len(batch) < held {
			continue
		}
		if got := waiting(e); got != held {
			t.Fatalf("after %d subscriptions held at once: waiting = %d", held, got)
		}
		for j, n := range batch {
			e.Unsubscribe(n, (i-len(batch)+1+j)%4)
		}
		batch = batch[:0]
		if n := e.Topics(); n != 0 {
			t.Fatalf("after %d names subscribed and left: Topics() = %d, want 0", i+1, n)
		}
	}
	if n := e.Topics(); n != 0 {
		t.Fatalf("Topics() = %d after %d names subscribed and left, want 0", n, names)
	}
	if n := waiting(e); n != 0 {
		t.Fatalf("waiting = %d after every subscriber left, want 0", n)
	}

	// All of them held at once, then left: the index gives its memory back.
	all := make([]string, names)
	for i := range all {
		all[i] = randomName(r)
	}
	before := heapAlloc()
	for _, name := range all {
		if _, err := e.Subscribe(name, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	holding := heapAlloc()
	if n := waiting(e); n != names {
		t.Fatalf("waiting = %d with %d names held, want %d", n, names, names)
	}
	for _, name := range all {
		e.Unsubscribe(name, 0)
		e.Unsubscribe(name, 0) // more than subscribed: ignored
	}
	if n, peak := waiting(e), waitPeak(e); n != 0 || peak >= 64 {
		t.Fatalf("after every subscriber left: waiting = %d, index maps sized for %d names; want 0 and under 64", n, peak)
	}
	if after := heapAlloc(); holding > before && after > before && after-before > (holding-before)/8 {
		t.Fatalf("heap grew %d KiB for %d waiting names and kept %d KiB once they left", (holding-before)>>10, names, (after-before)>>10)
	}
	runtime.KeepAlive(all)
	if n := e.Topics(); n != 0 {
		t.Fatalf("Topics() = %d, want 0", n)
	}
	if n := sink.count(0) + sink.count(1) + sink.count(2) + sink.count(3); n != 0 {
		t.Fatalf("the sink got %d publications, none was published", n)
	}
	// The limit is whole: 10 new topics can be published.
	for i := 0; i < 10; i++ {
		mustPublish(t, e, fmt.Sprintf("real.%d", i), false)
	}
}

// A subscriber of a topic never published gets its first publication, at
// seq 1 in the epoch its sub reply named, and the ones after it in order,
// once per loop, exactly as a subscriber of an existing topic.
func TestEngineWaitingSubscriberGetsFirstPublication(t *testing.T) {
	sink := newRecordSink()
	e := NewEngine(EngineConfig{Loops: 3}, sink)
	var cs []Catchup
	for _, loop := range []int{0, 0, 2, 1} {
		c, err := e.Subscribe("trade.XYZ", loop, nil)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	for i, c := range cs {
		if c.Pos.Seq != 0 || c.Pos.Epoch != cs[0].Pos.Epoch || c.Recovered || c.Reset || len(c.Backlog) != 0 {
			t.Fatalf("Subscribe #%d = %+v, want seq 0 in the engine's epoch", i, c)
		}
	}
	if _, ok := e.lookup("trade.XYZ"); ok || e.Topics() != 0 || waiting(e) != 1 {
		t.Fatalf("after Subscribe: topic exists %v, Topics() %d, waiting %d; want false, 0, 1", ok, e.Topics(), waiting(e))
	}
	e.Unsubscribe("trade.XYZ", 1) // loop 1 leaves before the first publication
	first := mustPublish(t, e, "trade.XYZ", false)
	if first != (Position{Epoch: cs[0].Pos.Epoch, Seq: 1}) {
		t.Fatalf("first publication at %+v, want seq 1 in the epoch of the sub reply %q", first, cs[0].Pos.Epoch)
	}
	mustPublish(t, e, "trade.XYZ", true)
	mustPublish(t, e, "trade.XYZ", false)
	sink.expectSeqs(t, "published", "trade.XYZ", span(1, 3), nil, span(1, 3))
	if got := sink.got[0][0]; got.Epoch != first.Epoch || got.Topic != "trade.XYZ" {
		t.Fatalf("first publication delivered as %+v", got)
	}
	if e.Topics() != 1 || waiting(e) != 0 {
		t.Fatalf("after the first publication: Topics() %d, waiting %d; want 1, 0", e.Topics(), waiting(e))
	}
	// The waiting counts became the topic's: two leaves on loop 0 end it there.
	e.Unsubscribe("trade.XYZ", 0)
	mustPublish(t, e, "trade.XYZ", false) // 4
	e.Unsubscribe("trade.XYZ", 0)
	e.Unsubscribe("trade.XYZ", 2)
	mustPublish(t, e, "trade.XYZ", false) // 5
	sink.expectSeqs(t, "unsubscribed", "trade.XYZ", span(1, 4), nil, span(1, 4))
	sink.checkOrder(t)

	// The same through the memory broker's batch.
	for _, name := range []string{"b.x", "b.y"} {
		if _, err := e.Subscribe(name, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	pos, err := NewMemoryBroker(e).Publish(context.Background(), []PublishRequest{{Topic: "b.x"}, {Topic: "b.y"}, {Topic: "b.x"}})
	if err != nil {
		t.Fatal(err)
	}
	if pos[0].Seq != 1 || pos[1].Seq != 1 || pos[2].Seq != 2 {
		t.Fatalf("batch positions %+v", pos)
	}
	var got []string
	for _, p := range sink.got[1] {
		got = append(got, fmt.Sprintf("%s@%d", p.Topic, p.Seq))
	}
	if want := []string{"b.x@1", "b.y@1", "b.x@2"}; !slices.Equal(got, want) {
		t.Fatalf("loop 1 got %v, want %v", got, want)
	}
	if waiting(e) != 0 {
		t.Fatalf("waiting = %d after the batch", waiting(e))
	}
}

// MaxTopics counts the topics published to, never subscribers: a node at
// its limit still takes subscribers, and the limit is reached by
// publications only.
func TestEngineMaxTopicsCountsOnlyPublished(t *testing.T) {
	sink := newRecordSink()
	e := NewEngine(EngineConfig{MaxTopics: 10}, sink)
	for i := 0; i < 1000; i++ {
		if _, err := e.Subscribe(fmt.Sprintf("sub.%d", i), 0, nil); err != nil {
			t.Fatalf("Subscribe #%d with MaxTopics 10: %v", i, err)
		}
	}
	if e.Topics() != 0 || waiting(e) != 1000 {
		t.Fatalf("Topics() %d, waiting %d; want 0, 1000", e.Topics(), waiting(e))
	}
	for i := 0; i < 10; i++ { // half of them waited for, half not
		name := fmt.Sprintf("sub.%d", i)
		if i%2 == 1 {
			name = fmt.Sprintf("pub.%d", i)
		}
		if pos, err := e.Publish(name, nil, false, false); err != nil || pos.Seq != 1 {
			t.Fatalf("Publish to new topic #%d (%s) = %+v, %v; want seq 1", i+1, name, pos, err)
		}
	}
	if _, err := e.Publish("sub.500", nil, false, false); !errors.Is(err, ErrTooManyTopics) {
		t.Fatalf("Publish to an 11th topic = %v, want ErrTooManyTopics", err)
	}
	if _, err := NewMemoryBroker(e).Publish(context.Background(), []PublishRequest{{Topic: "sub.0"}, {Topic: "pub.new"}}); !errors.Is(err, ErrTooManyTopics) {
		t.Fatalf("batch with an 11th topic = %v, want ErrTooManyTopics", err)
	}
	if e.Topics() != 10 || waiting(e) != 1000-5 {
		t.Fatalf("Topics() %d, waiting %d; want 10, %d", e.Topics(), waiting(e), 1000-5)
	}
	// At the limit: subscribers are still taken, published topics go on.
	if _, err := e.Subscribe("sub.more", 0, nil); err != nil {
		t.Fatalf("Subscribe at the limit: %v", err)
	}
	if _, err := e.Subscribe("sub.0", 0, nil); err != nil {
		t.Fatalf("Subscribe to a published topic at the limit: %v", err)
	}
	if pos := mustPublish(t, e, "sub.0", false); pos.Seq != 2 {
		t.Fatalf("publish to a topic at the limit: seq %d, want 2", pos.Seq)
	}
	// The refused topic's subscriber still waits, and nothing reached it.
	if got := sink.seqs(0, "sub.500"); len(got) != 0 {
		t.Fatalf("a refused publication was delivered: %v", got)
	}
	if got := sink.seqs(0, "sub.0"); !slices.Equal(got, span(1, 2)) {
		t.Fatalf("sub.0 delivered %v, want 1..2", got)
	}
}

// The first publication of a topic and subscribers arriving at the same
// moment: every subscriber gets exactly the publications after its sub
// reply's seq, none lost, none repeated; subscribers that come and go at
// the same time leave no count behind. Run with -race.
func TestEngineFirstPublicationRacesSubscribe(t *testing.T) {
	const (
		rounds  = 400
		steady  = 6 // loops 0..5: one subscriber each, staying
		churn   = 2 // loops 6..7: subscribe and leave, again and again
		pubs    = 20
		churnOf = 30
	)
	for round := 0; round < rounds; round++ {
		sink := newRecordSink()
		e := NewEngine(EngineConfig{Loops: steady + churn}, sink)
		b := NewMemoryBroker(e)
		name := fmt.Sprintf("race.%d", round)
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			got   = make([]Catchup, steady)
		)
		for loop := 0; loop < steady; loop++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := 0; i < (loop*round)%7; i++ { // spread the arrivals
					_ = current(e, name)
				}
				c, err := e.Subscribe(name, loop, nil)
				if err != nil {
					t.Error(err)
				}
				got[loop] = c
			}()
		}
		for loop := steady; loop < steady+churn; loop++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := 0; i < churnOf; i++ {
					if _, err := e.Subscribe(name, loop, nil); err != nil {
						t.Error(err)
					}
					e.Unsubscribe(name, loop)
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; i < pubs; i++ {
				var err error
				if round%2 == 0 {
					_, err = e.Publish(name, nil, false, false)
				} else {
					_, err = b.Publish(context.Background(), []PublishRequest{{Topic: name}})
				}
				if err != nil {
					t.Error(err)
				}
			}
		}()
		close(start)
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		epoch := current(e, name).Epoch
		for loop, c := range got {
			if c.Pos.Epoch != epoch || c.Pos.Seq > pubs {
				t.Fatalf("round %d loop %d: sub reply at %+v, want epoch %q", round, loop, c.Pos, epoch)
			}
			if s := sink.seqs(loop, name); !slices.Equal(s, span(c.Pos.Seq+1, pubs)) {
				t.Fatalf("round %d loop %d: subscribed at seq %d, got %v; want %d..%d", round, loop, c.Pos.Seq, s, c.Pos.Seq+1, pubs)
			}
		}
		// (Churning loops see gaps by design: they leave and come back.)
		tp, ok := e.lookup(name)
		if !ok {
			t.Fatalf("round %d: the topic does not exist after %d publications", round, pubs)
		}
		tp.mu.Lock()
		counts := slices.Clone(tp.loops)
		tp.mu.Unlock()
		want := make([]int32, steady+churn)
		for i := 0; i < steady; i++ {
			want[i] = 1
		}
		if !slices.Equal(counts, want) {
			t.Fatalf("round %d: subscribers per loop %v, want %v", round, counts, want)
		}
		if waiting(e) != 0 || e.Topics() != 1 {
			t.Fatalf("round %d: waiting %d, Topics() %d; want 0, 1", round, waiting(e), e.Topics())
		}
	}
}

// Subscribers of never-published names, from many goroutines at once,
// leave the index empty once they are gone.
func TestEngineWaitingConcurrentSubscribeUnsubscribe(t *testing.T) {
	const workers, each = 8, 2000
	e := NewEngine(EngineConfig{Loops: workers}, newRecordSink())
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				// Shared names: workers count on the same waiting entries.
				name := fmt.Sprintf("w.%d", i%97)
				if _, err := e.Subscribe(name, w, nil); err != nil {
					t.Error(err)
					return
				}
				if i%3 != 0 {
					e.Unsubscribe(name, w)
				}
			}
			for i := 0; i < each; i += 3 {
				e.Unsubscribe(fmt.Sprintf("w.%d", i%97), w)
			}
		}()
	}
	wg.Wait()
	if waiting(e) != 0 || e.Topics() != 0 || waitPeak(e) >= 64 {
		t.Fatalf("waiting %d, Topics() %d, peak %d; want 0, 0, under 64", waiting(e), e.Topics(), waitPeak(e))
	}
}
