package topic

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// countSink counts what the engine hands it, as cheaply as a real loop
// queue can.
type countSink struct{ n atomic.Int64 }

func (s *countSink) Enqueue(int, *Publication) { s.n.Add(1) }

func BenchmarkPublish(b *testing.B) {
	data := []byte(`{"p":"64000.5","q":"0.25"}`)
	for _, loops := range []int{0, 1, 2} {
		b.Run(fmt.Sprintf("loops=%d", loops), func(b *testing.B) {
			sink := &countSink{}
			e := NewEngine(EngineConfig{Loops: max(loops, 1)}, sink)
			for l := 0; l < loops; l++ {
				if _, err := e.Subscribe("ticker.BTCUSDT", l, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := e.Publish("ticker.BTCUSDT", data, false, false); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if got, want := sink.n.Load(), int64(loops)*int64(current(e, "ticker.BTCUSDT").Seq); got != want {
				b.Fatalf("sink got %d, want %d", got, want)
			}
		})
	}
}

func BenchmarkPublishParallel(b *testing.B) {
	const topics = 64
	data := []byte(`{"p":"64000.5"}`)
	sink := &countSink{}
	e := NewEngine(EngineConfig{Loops: 2}, sink)
	names := make([]string, topics)
	for i := range names {
		names[i] = fmt.Sprintf("book.SYM%d", i)
		if _, err := e.Subscribe(names[i], i%2, nil); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1))
		for pb.Next() {
			if _, err := e.Publish(names[i%topics], data, false, false); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

func BenchmarkPatternMatch(b *testing.B) {
	ps, err := ParsePatterns("ticker.*,book.>,priv.orders.*")
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"ticker.BTCUSDT", "book.BTCUSDT.L2", "priv.orders.42", "trades.BTCUSDT.spot"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = ps.Match(name)
			}
		})
	}
}

func BenchmarkSubscribeRecover(b *testing.B) {
	e := NewEngine(EngineConfig{}, &countSink{})
	for i := 0; i < 1000; i++ {
		if _, err := e.Publish("book.BTC", nil, false, i == 0); err != nil {
			b.Fatal(err)
		}
	}
	since := Position{Epoch: current(e, "book.BTC").Epoch, Seq: 900}
	b.ReportAllocs()
	for b.Loop() {
		if c := e.Resume("book.BTC", since); !c.Recovered || len(c.Backlog) != 100 {
			b.Fatalf("Resume = %+v", c)
		}
	}
}

// BenchmarkSubscribeUnpublished is a subscriber of a topic never published
// coming and going: what a client that subscribes to made-up names costs.
func BenchmarkSubscribeUnpublished(b *testing.B) {
	e := NewEngine(EngineConfig{Loops: 2}, &countSink{})
	names := make([]string, 1024)
	for i := range names {
		names[i] = fmt.Sprintf("rnd.%08x", i*2654435761)
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		name := names[i%len(names)]
		if _, err := e.Subscribe(name, i%2, nil); err != nil {
			b.Fatal(err)
		}
		e.Unsubscribe(name, i%2)
		i++
	}
	if e.Topics() != 0 || waiting(e) != 0 {
		b.Fatalf("Topics() %d, waiting %d", e.Topics(), waiting(e))
	}
}
