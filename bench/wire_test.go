package bench

import (
	"testing"

	"github.com/tickfan/tickfan/client"
	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/topic"
)

// The publisher's pub command must decode with the server's own decoder,
// and the frames the server makes of it must scan back to the same topic,
// seq and due time, in every format and for every payload size.
func TestPubRoundTripThroughServerCodec(t *testing.T) {
	protos := map[codec.Format]Proto{codec.WSJSON: ProtoWSJSON, codec.WSMsgpack: ProtoWSMsgpack, codec.TCPMsgpack: ProtoTCP}
	for _, size := range []int{0, 11, 12, 40, 64, 200, 300, 2048, 70000} {
		p := &publisher{topics: []string{"bench.t0", "bench.a-much-longer-topic-name-over-31-bytes"}, payload: payloadTemplate(size)}
		if want := max(size, minPayload); len(p.payload) != want {
			t.Errorf("size %d: payload of %d bytes, want %d", size, len(p.payload), want)
		}
		for ti, name := range p.topics {
			p.prefix = append(p.prefix, pubPrefix(name))
			const due = int64(1234567890123)
			frame, _ := p.appendPub(nil, ti, 77, due)
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
				if due2 := payloadDue(sp.Data, f.Msgpack()); !ok || string(sp.Topic) != name || sp.Seq != 4242 || due2 != due {
					t.Errorf("%v size %d: scanned %q %d %d (ok %v) from %q", f, size, sp.Topic, sp.Seq, due2, ok, client.Clip(fr.Payload))
				}
			}
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
