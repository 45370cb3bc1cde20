package server

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/tickfan/tickfan/topic"
)

type nopSink struct{}

func (nopSink) Enqueue(int, *topic.Publication) {}

// BenchmarkStatusScan is the status page's topic scan (once a second
// while a page watches, less often when it costs more: statusScanShare)
// over nodes of many topics, one in ten with a subscriber, a tenth of
// them private. ns/op is one scan; ns/topic divides it.
func BenchmarkStatusScan(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			e := topic.NewEngine(topic.EngineConfig{HistorySize: 1, Loops: 2, MaxTopics: n}, nopSink{})
			for i := range n {
				name := fmt.Sprintf("book.S%d", i)
				if i%10 == 9 {
					name = fmt.Sprintf("priv.orders.%d", i)
				}
				if _, err := e.Publish(name, []byte(`1`), false, false); err != nil {
					b.Fatal(err)
				}
				if i%10 == 0 {
					if _, err := e.Subscribe(name, i%2, nil); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				top, scanned := scanTopics(e, time.Second, true)
				if scanned != n || len(top) == 0 {
					b.Fatalf("scanned %d of %d, listed %d", scanned, n, len(top))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/topic")
		})
	}
}

// BenchmarkStatusSample is the sampler's work each second when no page
// watches (no topic scan): reading the counters of 4 loops and encoding
// the snapshot twice, with and without its full 300-sample history.
func BenchmarkStatusSample(b *testing.B) {
	s, err := New(Config{Loops: 4, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	s.startStatus()
	defer s.stopStatus()
	ss := &statusSampler{s: s, start: time.Now(), end: make(chan struct{}), loopsPrev: make([][2]uint64, 4),
		memSample: s.status.memSample}
	now := time.Now()
	for range statusHistory { // a full ring
		now = now.Add(statusEvery)
		ss.sample(now)
	}
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(statusEvery)
		ss.sample(now)
	}
	b.ReportMetric(float64(len(ss.current().full)), "bytes/full")
	b.ReportMetric(float64(len(ss.current().snap)), "bytes/event")
}
