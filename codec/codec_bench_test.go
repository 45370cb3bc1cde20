package codec

import (
	"fmt"
	"testing"

	"github.com/tickfan/tickfan/topic"
)

// benchPayload returns a JSON order-book payload of about n bytes.
func benchPayload(n int) []byte {
	b := []byte(`{"b":[`)
	for i := 0; len(b) < n-30; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, "[%d.5,%d.25]", 65000-i, i%7+1)
	}
	return append(b, `],"ts":1767225600123}`...)
}

// BenchmarkEncodePublication encodes a fresh publication every iteration,
// so it measures the encoding the cache saves: once per publication and
// format. The msgpack cases include converting the JSON payload.
func BenchmarkEncodePublication(b *testing.B) {
	for _, format := range []Format{WSJSON, WSMsgpack} {
		name := "json"
		if format.Msgpack() {
			name = "msgpack"
		}
		for _, size := range []int{64, 512} {
			data := benchPayload(size)
			b.Run(fmt.Sprintf("%s/%dB", name, size), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))
				pubs := make([]topic.Publication, 1024)
				for i := 0; b.Loop(); i++ {
					p := &pubs[i%len(pubs)]
					*p = topic.Publication{Topic: "book.BTC-USD", Seq: uint64(i + 1), Data: data}
					if len(Frame(p, format)) == 0 {
						b.Fatal("empty frame")
					}
				}
			})
		}
	}
}

// BenchmarkFrameCached is what every delivery after the first pays.
func BenchmarkFrameCached(b *testing.B) {
	p := &topic.Publication{Topic: "book.BTC-USD", Seq: 1, Data: benchPayload(512)}
	Frame(p, WSJSON)
	b.ReportAllocs()
	for b.Loop() {
		Frame(p, WSJSON)
	}
}

func BenchmarkDecode(b *testing.B) {
	js := []byte(`{"op":"sub","id":42,"topics":["book.BTC-USD","ticker.ETH-USD"],"since":{"book.BTC-USD":{"e":"k3j2","s":1234}}}`)
	mp, err := JSONToMsgpack(nil, js)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		f    Format
		body []byte
	}{{"json", WSJSON, js}, {"msgpack", WSMsgpack, mp}} {
		b.Run(bc.name, func(b *testing.B) {
			var cmd Command
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.body)))
			for b.Loop() {
				if err := Decode(bc.f, bc.body, &cmd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
