package bench

import (
	"encoding/binary"
	"testing"

	"github.com/tickfan/tickfan/client"
	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/topic"
)

// The publisher's pub command must decode with the server's own decoder,
// and the frames the server makes of it must scan back to the same topic,
// seq, due time and sent time, in every format (WS-JSON subscribers get
// the payload as the JSON the server makes of it) and for every payload
// size.
func TestPubRoundTripThroughServerCodec(t *testing.T) {
	protos := map[codec.Format]Proto{codec.WSJSON: ProtoWSJSON, codec.WSMsgpack: ProtoWSMsgpack, codec.TCPMsgpack: ProtoTCP}
	for _, size := range []int{0, 11, 19, 20, 21, 40, 64, 200, 300, 2048, 70000} {
		p := &publisher{pubTally: newPubTally("publisher", []string{"bench.t0", "bench.a-much-longer-topic-name-over-31-bytes"}), payload: payloadTemplate(size)}
		if want := max(size, minPayload); len(p.payload) != want {
			t.Errorf("size %d: payload of %d bytes, want %d", size, len(p.payload), want)
		}
		for ti, name := range p.topics {
			p.prefix = append(p.prefix, pubPrefix(name))
			const due, sent = int64(1234567890123), int64(1234567890123 + 27_000)
			frame, at := p.appendPub(nil, ti, 77, due)
			if got := payloadSent(frame[at-sentAt:], true); got != 0 {
				t.Fatalf("size %d: sent %d before the write patched it", size, got)
			}
			binary.BigEndian.PutUint64(frame[at:], uint64(sent)) // as run does before the write
			body, n, err := client.ParseTCPFrame(frame)
			if err != nil || n != len(frame) {
				t.Fatalf("size %d: the pub frame does not parse: %v (%d of %d bytes)", size, err, n, len(frame))
			}
			var cmd codec.Command
			if err := codec.Decode(codec.TCPMsgpack, body, &cmd); err != nil {
				t.Fatalf("size %d: the server refuses the pub: %v", size, err)
			}
			if cmd.Op != "pub" || cmd.ID != 77 || cmd.Topic != name || !cmd.DataMsgpack {
				t.Fatalf("size %d: decoded %+v", size, cmd)
			}
			pub := &topic.Publication{Topic: name, Epoch: "e", Seq: 4242, Data: cmd.Data, DataMsgpack: true}
			for f, proto := range protos {
				frame := codec.Frame(pub, f)
				fr, n, err := proto.ParseFrame(frame)
				if err != nil || n != len(frame) {
					t.Fatalf("%v size %d: the server's frame does not parse: %v", f, size, err)
				}
				sp, ok := client.ScanPublication(fr.Payload, f.Msgpack())
				due2, sent2 := payloadTimes(sp.Data, f.Msgpack())
				if !ok || string(sp.Topic) != name || sp.Seq != 4242 || due2 != due || sent2 != sent {
					t.Errorf("%v size %d: scanned %q %d due %d sent %d (ok %v) from %q", f, size, sp.Topic, sp.Seq, due2, sent2, ok, client.Clip(fr.Payload))
				}
				if payloadDue(sp.Data, f.Msgpack()) != due || payloadSent(sp.Data, f.Msgpack()) != sent {
					t.Errorf("%v size %d: payloadDue or payloadSent disagree with payloadTimes", f, size)
				}
			}
		}
	}
}

// The payload is [due, sent, pad] as the server turns it into JSON.
func TestPayloadTimesShapes(t *testing.T) {
	for _, c := range []struct {
		name      string
		d         []byte
		mp        bool
		due, sent int64
	}{
		{"json", []byte(`[5,7,"xx"]`), false, 5, 7},
		{"json before the sent time", []byte(`[5,"xx"]`), false, 5, 0},
		{"json of another shape", []byte(`{"a":1}`), false, 0, 0},
		{"json not a number", []byte(`["a",1]`), false, 0, 0},
		{"msgpack", append(appendMpUint64(appendMpUint64([]byte{0x93}, 5), 7), 0xa1, 'x'), true, 5, 7},
		{"msgpack before the sent time", append(appendMpUint64([]byte{0x92}, 5), 0xa1, 'x'), true, 5, 0},
		{"msgpack small ints", []byte{0x93, 5, 7, 0xa0}, true, 5, 7},
		{"msgpack cut short", []byte{0x93, 5, 0xcf, 0}, true, 5, 0},
		{"msgpack empty array", []byte{0x90}, true, 0, 0},
		{"msgpack map", []byte{0x81, 0xa1, 'a', 1}, true, 0, 0},
	} {
		if due, sent := payloadTimes(c.d, c.mp); due != c.due || sent != c.sent {
			t.Errorf("%s: due %d sent %d, want %d %d", c.name, due, sent, c.due, c.sent)
		}
	}
}

// A snapshot's payload carries its due time too.
func TestPayloadDueOfSnapshot(t *testing.T) {
	snap := &topic.Publication{Topic: "bench.t0", Seq: 2, Snap: true, Data: []byte(`[5,"x"]`)}
	for _, f := range []codec.Format{codec.WSJSON, codec.WSMsgpack} {
		sp, ok := client.ScanPublication(codec.Body(codec.Frame(snap, f), f), f.Msgpack())
		if due := payloadDue(sp.Data, f.Msgpack()); !ok || sp.Seq != 2 || due != 5 {
			t.Errorf("%v snapshot: %+v %v due %d", f, sp, ok, due)
		}
	}
	if due := payloadDue([]byte(`{"a":1}`), false); due != 0 {
		t.Errorf("a payload of another shape has due %d", due)
	}
}
