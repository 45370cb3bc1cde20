package bench

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/gobwas/ws"

	"github.com/tickfan/tickfan/codec"
	"github.com/tickfan/tickfan/topic"
)

// The publisher's pub command must decode with the server's own decoder,
// and the frames the server makes of it must scan back to the same topic,
// seq and due time, in every format and for every payload size.
func TestPubRoundTripThroughServerCodec(t *testing.T) {
	for _, size := range []int{0, 11, 12, 40, 64, 200, 300, 2048, 70000} {
		p := &publisher{topics: []string{"bench.t0", "bench.a-much-longer-topic-name-over-31-bytes"}, payload: payloadTemplate(size)}
		if want := max(size, minPayload); len(p.payload) != want {
			t.Errorf("size %d: payload of %d bytes, want %d", size, len(p.payload), want)
		}
		for ti, name := range p.topics {
			p.prefix = append(p.prefix, pubPrefix(name))
			const due = int64(1234567890123)
			frame := p.appendPub(nil, ti, 77, due)
			body, n, err := parseTCPFrame(frame)
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
			for _, f := range []codec.Format{codec.WSJSON, codec.WSMsgpack, codec.TCPMsgpack} {
				frame := codec.Frame(pub, f)
				var body []byte
				if f == codec.TCPMsgpack {
					body, n, err = parseTCPFrame(frame)
				} else {
					var fr serverFrame
					fr, n, err = parseServerFrame(frame)
					body = fr.payload
				}
				if err != nil || n != len(frame) {
					t.Fatalf("%v size %d: the server's frame does not parse: %v", f, size, err)
				}
				pf, ok := scanPublication(body, f.Msgpack())
				if !ok || string(pf.topic) != name || pf.seq != 4242 || pf.due != due {
					t.Errorf("%v size %d: scanned %q %d %d (ok %v) from %q", f, size, pf.topic, pf.seq, pf.due, ok, clip(body))
				}
			}
		}
	}
}

func TestScanRejectsOtherMessages(t *testing.T) {
	for _, f := range []codec.Format{codec.WSJSON, codec.WSMsgpack, codec.TCPMsgpack} {
		for _, frame := range [][]byte{
			codec.AppendLag(nil, f, "bench.t0", 5),
			codec.AppendReset(nil, f, "bench.t0", "e", 5),
			codec.AppendEmptyReply(nil, f, 3, true),
			codec.AppendSubReply(nil, f, 1, true, []codec.SubResult{{Topic: "bench.t0", Epoch: "e", Seq: 9}}),
			codec.AppendError(nil, f, 1, true, 429, "too many"),
		} {
			body := codec.Body(frame, f)
			if _, ok := scanPublication(body, f.Msgpack()); ok {
				t.Errorf("%v: %q scanned as a publication", f, clip(body))
			}
			if _, err := decodeControl(body, f.Msgpack()); err != nil {
				t.Errorf("%v: %q: %v", f, clip(body), err)
			}
		}
	}
	// A snapshot is a publication too.
	snap := &topic.Publication{Topic: "bench.t0", Seq: 2, Snap: true, Data: []byte(`[5,"x"]`)}
	for _, f := range []codec.Format{codec.WSJSON, codec.WSMsgpack} {
		pf, ok := scanPublication(codec.Body(codec.Frame(snap, f), f), f.Msgpack())
		if !ok || pf.seq != 2 || pf.due != 5 {
			t.Errorf("%v snapshot: %+v %v", f, pf, ok)
		}
	}
}

func TestSubReplyAndControl(t *testing.T) {
	for _, f := range []codec.Format{codec.WSJSON, codec.WSMsgpack} {
		body := codec.Body(codec.AppendSubReply(nil, f, 7, true, []codec.SubResult{
			{Topic: "a", Epoch: "e1", Seq: 9, Rec: true}, {Topic: "b", Epoch: "e2", Seq: 0},
		}), f)
		m, err := decodeControl(body, f.Msgpack())
		if err != nil || m.ID != 7 || !m.hasRes() {
			t.Fatalf("%v: %+v %v", f, m, err)
		}
		res, err := m.subResults(f.Msgpack())
		if err != nil || res["a"] != (subResult{"e1", 9, true}) || res["b"] != (subResult{"e2", 0, false}) {
			t.Errorf("%v: %+v %v", f, res, err)
		}
		m, _ = decodeControl(codec.Body(codec.AppendLag(nil, f, "a", 3), f), f.Msgpack())
		if m.Op != "lag" || m.T != "a" || m.S != 3 {
			t.Errorf("%v lag: %+v", f, m)
		}
		m, _ = decodeControl(codec.Body(codec.AppendClose(nil, f, 4005, "slow"), f), f.Msgpack())
		if m.Op != "close" || m.Code != 4005 {
			t.Errorf("%v close: %+v", f, m)
		}
	}
}

// The client's frames are masked, as RFC 6455 asks, and the server's
// frame reader takes them.
func TestClientFramesMasked(t *testing.T) {
	for _, size := range []int{0, 5, 125, 126, 70000} {
		payload := bytes.Repeat([]byte{'z'}, size)
		frame := appendClientFrame(nil, ws.OpText, payload)
		if frame[1]&0x80 == 0 {
			t.Fatalf("size %d: not masked", size)
		}
		fr, n, err := codec.ReadWSFrame(append([]byte(nil), frame...), 0)
		if err != nil || n != len(frame) || !bytes.Equal(fr.Payload, payload) || fr.Op != ws.OpText || !fr.Fin {
			t.Errorf("size %d: server read %v %d %v", size, fr.Op, n, err)
		}
	}
	cmd := subCommand(ProtoWSJSON, 3, []string{"a", "b"}, map[string]Position{"a": {"e", 4}})
	fr, _, err := codec.ReadWSFrame(cmd, 0)
	if err != nil {
		t.Fatal(err)
	}
	var c codec.Command
	if err := codec.Decode(codec.WSJSON, fr.Payload, &c); err != nil || c.Op != "sub" || c.ID != 3 || len(c.Topics) != 2 || c.Since["a"] != (topic.Position{Epoch: "e", Seq: 4}) {
		t.Errorf("sub decoded %+v %v", c, err)
	}
	tcp := subCommand(ProtoTCP, 4, []string{"a"}, nil)
	if binary.BigEndian.Uint32(tcp) != uint32(len(tcp)-4) {
		t.Errorf("tcp frame length")
	}
}

func TestParseFramesIncomplete(t *testing.T) {
	frame := codec.AppendWSFrame(nil, ws.OpBinary, bytes.Repeat([]byte{1}, 300))
	for i := range len(frame) {
		if _, n, err := parseServerFrame(frame[:i]); n != 0 || err != nil {
			t.Fatalf("%d of %d bytes: n %d err %v", i, len(frame), n, err)
		}
	}
	tcp := appendTCPFrame(nil, []byte("hello"))
	for i := range len(tcp) {
		if _, n, err := parseTCPFrame(tcp[:i]); n != 0 || err != nil {
			t.Fatalf("tcp %d bytes: n %d err %v", i, n, err)
		}
	}
	if _, _, err := parseTCPFrame([]byte{0, 0, 0, 0}); err == nil {
		t.Errorf("a zero-length TCP frame parses")
	}
}
