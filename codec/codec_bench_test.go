package codec

import "testing"

// The encoding benchmarks, against encoding/json and vmihailenco/msgpack,
// are in bench/codec_bench_test.go.

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
