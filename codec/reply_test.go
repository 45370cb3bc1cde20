package codec

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tickfan/tickfan/topic"
)

type obj = map[string]any

func TestAppendReplies(t *testing.T) {
	odd := "bad \"x\"\n\t<ü> \\ \x01 \u2028"
	jsonPub := &topic.Publication{Topic: "book.X", Epoch: "E1", Seq: 10, Data: []byte(`{"p":[1.5,-2],"q":"x"}`)}
	mpPub := &topic.Publication{Topic: "book.X", Epoch: "E1", Seq: 11, Snap: true,
		Data: marshal(t, WSMsgpack, kv{"p", []any{3, 2.25}}), DataMsgpack: true}
	long := strings.Repeat("é", 40000) // an 80000-byte message: a 64-bit WS length

	tests := []struct {
		name  string
		frame func(dst []byte, f Format) []byte
		want  any
	}{
		{"error", func(d []byte, f Format) []byte { return AppendError(d, f, 7, true, 409, odd) },
			obj{"id": uint64(7), "err": obj{"code": uint64(409), "msg": odd}}},
		{"error without id", func(d []byte, f Format) []byte { return AppendError(d, f, 7, false, 400, "message is not valid JSON") },
			obj{"err": obj{"code": uint64(400), "msg": "message is not valid JSON"}}},
		{"error 126 bytes+", func(d []byte, f Format) []byte { return AppendError(d, f, 1, true, 500, strings.Repeat("m", 300)) },
			obj{"id": uint64(1), "err": obj{"code": uint64(500), "msg": strings.Repeat("m", 300)}}},
		{"error 64k+", func(d []byte, f Format) []byte { return AppendError(d, f, 1, true, 413, long) },
			obj{"id": uint64(1), "err": obj{"code": uint64(413), "msg": long}}},
		{"empty", func(d []byte, f Format) []byte { return AppendEmptyReply(d, f, 1<<63, true) },
			obj{"id": uint64(1 << 63), "res": obj{}}},
		{"empty without id", func(d []byte, f Format) []byte { return AppendEmptyReply(d, f, 0, false) },
			obj{"res": obj{}}},
		{"sub", func(d []byte, f Format) []byte {
			return AppendSubReply(d, f, 3, true, []SubResult{
				{Topic: "ticker.BTC", Epoch: "e\"1", Seq: 0, Rec: false},
				{Topic: "book.ETH", Epoch: "e2", Seq: 1<<64 - 1, Rec: true},
			})
		}, obj{"id": uint64(3), "res": obj{
			"ticker.BTC": obj{"e": "e\"1", "s": uint64(0), "rec": false},
			"book.ETH":   obj{"e": "e2", "s": uint64(1<<64 - 1), "rec": true},
		}}},
		{"sub many", func(d []byte, f Format) []byte {
			var res []SubResult
			for i := range 20 {
				res = append(res, SubResult{Topic: "t." + string(rune('a'+i)), Epoch: "e", Seq: uint64(i)})
			}
			return AppendSubReply(d, f, 3, true, res)
		}, func() any {
			m := obj{}
			for i := range 20 {
				m["t."+string(rune('a'+i))] = obj{"e": "e", "s": uint64(i), "rec": false}
			}
			return obj{"id": uint64(3), "res": m}
		}()},
		{"pub", func(d []byte, f Format) []byte {
			return AppendPubReply(d, f, 4, true, topic.Position{Epoch: "ep", Seq: 99})
		}, obj{"id": uint64(4), "res": obj{"e": "ep", "s": uint64(99)}}},
		{"pull", func(d []byte, f Format) []byte {
			return AppendPullReply(d, f, 5, true, "E1", []*topic.Publication{jsonPub, mpPub}, true)
		}, obj{"id": uint64(5), "res": obj{"e": "E1", "more": true, "pubs": []any{
			obj{"t": "book.X", "s": uint64(10), "d": obj{"p": []any{1.5, int64(-2)}, "q": "x"}},
			obj{"t": "book.X", "s": uint64(11), "d": obj{"p": []any{uint64(3), 2.25}}, "k": "snap"},
		}}}},
		{"pull empty", func(d []byte, f Format) []byte {
			return AppendPullReply(d, f, 5, false, "E1", nil, false)
		}, obj{"res": obj{"e": "E1", "more": false, "pubs": []any{}}}},
		{"auth", func(d []byte, f Format) []byte { return AppendAuthReply(d, f, 6, true, "user-42", 1767225600) },
			obj{"id": uint64(6), "res": obj{"sub": "user-42", "exp": uint64(1767225600)}}},
		{"auth negative exp", func(d []byte, f Format) []byte { return AppendAuthReply(d, f, 6, true, "u", -5) },
			obj{"id": uint64(6), "res": obj{"sub": "u", "exp": int64(-5)}}},
		{"reset", func(d []byte, f Format) []byte { return AppendReset(d, f, "book.X", "ep\\och", 12) },
			obj{"op": "reset", "t": "book.X", "e": "ep\\och", "s": uint64(12)}},
		{"lag", func(d []byte, f Format) []byte { return AppendLag(d, f, "book.X", 1<<40) },
			obj{"op": "lag", "t": "book.X", "s": uint64(1 << 40)}},
		{"close", func(d []byte, f Format) []byte {
			return Disconnect{Code: 4005, Reason: "slow client: " + odd}.AppendClose(d, f)
		},
			obj{"op": "close", "code": uint64(4005), "reason": "slow client: " + odd}},
	}
	prefix := []byte("previous frames")
	for _, f := range allFormats {
		for _, tt := range tests {
			t.Run(f.String()+"/"+tt.name, func(t *testing.T) {
				frame := tt.frame(nil, f)
				body := splitFrame(t, frame, f)
				if !bytes.Equal(Body(frame, f), body) {
					t.Fatalf("Body gives %q, want %q", Body(frame, f), body)
				}
				mustEqual(t, decodeBody(t, body, f), tt.want)
				if f == WSJSON && !bytes.HasPrefix(body, []byte(`{"id":`)) && bytes.Contains(body, []byte(`"id"`)) {
					t.Fatalf("id is not first: %s", body)
				}
				// Appending keeps what dst held.
				out := tt.frame(append([]byte(nil), prefix...), f)
				if !bytes.HasPrefix(out, prefix) || !bytes.Equal(out[len(prefix):], frame) {
					t.Fatal("appending to a non-empty dst changed the frame or dst")
				}
			})
		}
	}
}

func TestAppendPingMessage(t *testing.T) {
	frame := AppendPingMessage([]byte("x"))[1:]
	mustEqual(t, decodeBody(t, splitFrame(t, frame, TCPMsgpack), TCPMsgpack), obj{"op": "ping"})
}

func TestErrorJSONShape(t *testing.T) {
	// The HTTP API writes codec.Error with encoding/json.
	got := marshal(t, WSJSON, map[string]Error{"err": {Code: 400, Msg: "x"}})
	if string(got) != `{"err":{"code":400,"msg":"x"}}` {
		t.Fatalf("got %s", got)
	}
}

func TestFormat(t *testing.T) {
	for _, tt := range []struct {
		f   Format
		mp  bool
		str string
	}{
		{WSJSON, false, "ws-json"}, {WSMsgpack, true, "ws-msgpack"}, {TCPMsgpack, true, "tcp-msgpack"}, {Format(9), false, "Format(9)"},
	} {
		if tt.f.Msgpack() != tt.mp || tt.f.String() != tt.str {
			t.Errorf("%d: Msgpack %v String %q", tt.f, tt.f.Msgpack(), tt.f.String())
		}
	}
}
