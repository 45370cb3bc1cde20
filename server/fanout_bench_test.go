package server

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"testing"

	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/server/reactor"
)

// discardTransport counts what the loop writes and drops it, so the
// benchmark measures the fan-out, not the kernel.
type discardTransport struct{ bytes int }

func (d *discardTransport) Writev(bs [][]byte) (int, error) {
	n := 0
	for _, b := range bs {
		n += len(b)
	}
	d.bytes += n
	return n, nil
}

func (d *discardTransport) Write(b []byte) (int, error) {
	d.bytes += len(b)
	return len(b), nil
}

func (d *discardTransport) OutboundBuffered() int { return 0 }

func (d *discardTransport) Close() error      { return nil }
func (d *discardTransport) CloseWrite() error { return nil }
func (d *discardTransport) WakeInput()        {}

// benchServer is a server with one loop and subs subscribers of topic "bench",
// without listeners: the loop is driven by hand.
func benchServer(b *testing.B, subs int, format codec.Format) (*Server, *loop) {
	b.Helper()
	srv, err := New(Config{Loops: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	l := srv.loops[0]
	for i := 0; i < subs; i++ {
		c := newConn(&discardTransport{}, l, reactor.WebSocket)
		c.state, c.format = stOpen, format
		c.begun = 0 // its upgrade is done: no message timeout runs
		cu, err := srv.engine.Subscribe("bench", l.id, nil)
		if err != nil {
			b.Fatal(err)
		}
		c.addSub(c.newSub("bench", cu))
	}
	return srv, l
}

// BenchmarkFanout measures the publish path end to end on one loop: the
// engine assigns the seq and keeps history, the publication is encoded once,
// a reference is appended to every subscriber's outbox, and every outbox is
// handed to (a discarding) writev. ns/delivery and allocs/delivery divide
// the cost by the subscribers reached.
func BenchmarkFanout(b *testing.B) {
	benchFanout(b, 1, []int{1, 100, 10_000})
}

// BenchmarkFanoutBatch is BenchmarkFanout with 64 publications a turn, as
// a loop gets them from a fast producer: every outbox grows past its
// small array and is written in one write.
func BenchmarkFanoutBatch(b *testing.B) {
	benchFanout(b, 64, []int{1000})
}

func benchFanout(b *testing.B, batch int, subsList []int) {
	payload := []byte(`{"b":[[65000.5,1.25],[64999.5,0.5]],"a":[[65001.5,2]]}`)
	for _, format := range []codec.Format{codec.WSJSON, codec.WSMsgpack} {
		for _, subs := range subsList {
			b.Run(fmt.Sprintf("%s/subs=%d", format, subs), func(b *testing.B) {
				srv, l := benchServer(b, subs, format)
				// One publication first, so the outboxes exist: the figures
				// are the steady state.
				if _, err := srv.engine.Publish("bench", payload, false, false); err != nil {
					b.Fatal(err)
				}
				l.turn()
				l.stats.deliveries.Store(0)
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					for range batch {
						if _, err := srv.engine.Publish("bench", payload, false, false); err != nil {
							b.Fatal(err)
						}
					}
					l.turn()
				}
				b.StopTimer()
				runtime.ReadMemStats(&after)
				deliveries := float64(b.N) * float64(batch*subs)
				if got := l.stats.deliveries.Load(); float64(got) != deliveries {
					b.Fatalf("delivered %d, want %.0f", got, deliveries)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/delivery")
				b.ReportMetric(float64(after.Mallocs-before.Mallocs)/deliveries, "allocs/delivery")
			})
		}
	}
}
