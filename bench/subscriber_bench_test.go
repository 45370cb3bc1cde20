package bench

import (
	"fmt"
	"testing"

	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/topic"
)

// BenchmarkSubscriberConsume is the bench's receive hot path: a loop's
// read of whole frames of publications, as the server writes them, parsed
// and accounted by a subscriber connection. It must not allocate and must
// stay well under what a server spends per delivery, or the bench would
// measure itself.
//
//	go test -run '^$' -bench SubscriberConsume -benchmem -count 5 ./bench/
func BenchmarkSubscriberConsume(b *testing.B) {
	const perRead = 64
	for _, proto := range []Proto{ProtoWSJSON, ProtoWSMsgpack, ProtoTCP} {
		f := map[Proto]codec.Format{ProtoWSJSON: codec.WSJSON, ProtoWSMsgpack: codec.WSMsgpack, ProtoTCP: codec.TCPMsgpack}[proto]
		for _, size := range []int{64, 2048} {
			b.Run(fmt.Sprintf("%s/%dB", proto, size), func(b *testing.B) {
				payload := payloadTemplate(size)
				payload[sentAt+7] = 1 // a sent time, so that both latencies are recorded
				var buf []byte
				for s := uint64(1); s <= perRead; s++ {
					p := &topic.Publication{Topic: "bench.t3", Epoch: "e", Seq: s, Data: payload, DataMsgpack: true}
					buf = append(buf, codec.Frame(p, f)...)
				}
				p := &pool{proto: proto, clock: newClock()}
				sc := &subConn{p: p, sh: newShard()}
				for _, t := range []string{"bench.t0", "bench.t1", "bench.t2", "bench.t3"} {
					sc.tracks = append(sc.tracks, track{topic: t, started: true})
				}
				b.ReportAllocs()
				b.SetBytes(int64(len(buf)))
				for b.Loop() {
					sc.tracks[3].last = 0
					n, out, delivered, err := sc.consume(buf, 1, 0, 2)
					if err != nil || n != len(buf) || len(out) != 0 || delivered != perRead {
						b.Fatalf("consumed %d of %d bytes, %d delivered: %v", n, len(buf), delivered, err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perRead), "ns/msg")
			})
		}
	}
}

// BenchmarkPublisherAppend is the publisher's hot path: one pub command
// framed for TCP with its due time (the sent time is patched at the
// write), into a reused buffer.
func BenchmarkPublisherAppend(b *testing.B) {
	for _, size := range []int{64, 2048} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			p := &publisher{pubTally: newPubTally("publisher", []string{"bench.t0"}), payload: payloadTemplate(size)}
			p.prefix = append(p.prefix, pubPrefix("bench.t0"))
			var buf []byte
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				buf, _ = p.appendPub(buf[:0], 0, uint64(i+1), int64(i))
			}
		})
	}
}
