package bench

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/topic"
)

// bookPayload returns a JSON order-book payload of about n bytes.
func bookPayload(n int) []byte {
	b := []byte(`{"b":[`)
	for i := 0; len(b) < n-30; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, "[%d.5,%d.25]", 65000-i, i%7+1)
	}
	return append(b, `],"ts":1767225600123}`...)
}

// wirePub is the publication as a program would declare it for
// encoding/json or vmihailenco/msgpack.
type wirePub struct {
	T string             `json:"t" msgpack:"t"`
	S uint64             `json:"s" msgpack:"s"`
	D json.RawMessage    `json:"d" msgpack:"-"`
	M msgpack.RawMessage `json:"-" msgpack:"d"`
}

// BenchmarkPublicationEncoding encodes one publication (a fresh one each
// iteration, so nothing is cached) as tickfan's codec does for a WebSocket
// frame (header included), with the payload published in the same
// encoding or converted from the other, and as encoding/json and
// vmihailenco/msgpack do for the same message in a struct (payload already
// in the target encoding, no frame header). Run together:
//
//	go test -run '^$' -bench PublicationEncoding -benchmem -count 5 ./bench/
func BenchmarkPublicationEncoding(b *testing.B) {
	for _, size := range []int{64, 512} {
		data := bookPayload(size)
		var asMsgpack msgpack.RawMessage
		{
			var v any
			if err := json.Unmarshal(data, &v); err != nil {
				b.Fatal(err)
			}
			var err error
			if asMsgpack, err = msgpack.Marshal(v); err != nil {
				b.Fatal(err)
			}
		}
		for _, f := range []struct {
			name    string
			format  codec.Format
			msgpack bool // the payload was published in msgpack
		}{
			{"tickfan-json", codec.WSJSON, false},
			{"tickfan-msgpack", codec.WSMsgpack, true},
			{"tickfan-msgpack-from-json", codec.WSMsgpack, false},
			{"tickfan-json-from-msgpack", codec.WSJSON, true},
		} {
			payload := data
			if f.msgpack {
				payload = asMsgpack
			}
			b.Run(fmt.Sprintf("%s/%dB", f.name, size), func(b *testing.B) {
				b.ReportAllocs()
				pubs := make([]topic.Publication, 1024)
				for i := 0; b.Loop(); i++ {
					p := &pubs[i%len(pubs)]
					*p = topic.Publication{Topic: "book.BTC-USD", Seq: uint64(i + 1), Data: payload, DataMsgpack: f.msgpack}
					if len(codec.Frame(p, f.format)) == 0 {
						b.Fatal("empty frame")
					}
				}
			})
		}
		b.Run(fmt.Sprintf("encoding-json/%dB", size), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				out, err := json.Marshal(&wirePub{T: "book.BTC-USD", S: uint64(i + 1), D: data})
				if err != nil || len(out) == 0 {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("vmihailenco-msgpack/%dB", size), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				out, err := msgpack.Marshal(&wirePub{T: "book.BTC-USD", S: uint64(i + 1), M: asMsgpack})
				if err != nil || len(out) == 0 {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFrameCached is what every delivery after the first pays: the
// frame of a publication already encoded in that format.
func BenchmarkFrameCached(b *testing.B) {
	p := &topic.Publication{Topic: "book.BTC-USD", Seq: 1, Data: bookPayload(512)}
	codec.Frame(p, codec.WSJSON)
	b.ReportAllocs()
	for b.Loop() {
		codec.Frame(p, codec.WSJSON)
	}
}

// BenchmarkPublicationPerDelivery is the encoding cost of one delivery to
// 1,000 subscribers of a 512-byte publication: tickfan encodes once per
// format and every subscriber shares the frame; a server that encodes per
// subscriber pays the whole encoding each time.
func BenchmarkPublicationPerDelivery(b *testing.B) {
	const subs = 1000
	data := bookPayload(512)
	b.Run("tickfan-encode-once", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			p := &topic.Publication{Topic: "book.BTC-USD", Seq: uint64(i + 1), Data: data}
			for range subs {
				if len(codec.Frame(p, codec.WSJSON)) == 0 {
					b.Fatal("empty frame")
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/delivery")
	})
	b.Run("encoding-json-per-subscriber", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			for range subs {
				if out, _ := json.Marshal(&wirePub{T: "book.BTC-USD", S: uint64(i + 1), D: data}); len(out) == 0 {
					b.Fatal("empty")
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/delivery")
	})
}
