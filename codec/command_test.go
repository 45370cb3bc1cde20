package codec

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/tickfan/tickfan/topic"
)

func TestDecode(t *testing.T) {
	type pos = topic.Position
	tests := []struct {
		name string
		msg  kv
		want Command
		data any // the value Data must hold, when "d" is sent
	}{
		{
			name: "sub",
			msg:  kv{"op", "sub", "id", 1, "topics", []string{"ticker.BTC", "book.ETH-USD"}},
			want: Command{Op: "sub", ID: 1, HasID: true, Topics: []string{"ticker.BTC", "book.ETH-USD"}},
		},
		{
			name: "sub with since",
			msg: kv{"op", "sub", "id", 2, "topics", []string{"a", "b"},
				"since", kv{"a", kv{"e", "ep1", "s", 41}, "b", kv{"s", 7, "e", "ep2"}}},
			want: Command{Op: "sub", ID: 2, HasID: true, Topics: []string{"a", "b"},
				Since: map[string]pos{"a": {Epoch: "ep1", Seq: 41}, "b": {Epoch: "ep2", Seq: 7}}},
		},
		{
			name: "since before op",
			msg:  kv{"since", kv{"x.y", kv{"e", "E", "s", 3}}, "topics", []string{"x.y"}, "op", "sub"},
			want: Command{Op: "sub", Topics: []string{"x.y"}, Since: map[string]pos{"x.y": {Epoch: "E", Seq: 3}}},
		},
		{
			name: "unsub",
			msg:  kv{"op", "unsub", "id", 3, "topics", []string{"a"}},
			want: Command{Op: "unsub", ID: 3, HasID: true, Topics: []string{"a"}},
		},
		{
			name: "pull",
			msg:  kv{"op", "pull", "id", 4, "t", "trades.X", "since", kv{"e", "abc", "s", uint64(math.MaxUint64)}, "limit", 50},
			want: Command{Op: "pull", ID: 4, HasID: true, Topic: "trades.X", From: &pos{Epoch: "abc", Seq: math.MaxUint64}, Limit: 50},
		},
		{
			name: "pull since before op",
			msg:  kv{"since", kv{"s", 9, "e", "z"}, "t", "a", "op", "pull"},
			want: Command{Op: "pull", Topic: "a", From: &pos{Epoch: "z", Seq: 9}},
		},
		{
			name: "pull since with missing fields",
			msg:  kv{"op", "pull", "t", "a", "since", kv{}},
			want: Command{Op: "pull", Topic: "a", From: &pos{}},
		},
		{
			name: "pub object snap",
			msg:  kv{"op", "pub", "id", 5, "t", "book.X", "d", kv{"b", []any{[]any{65000.5, 1}}, "n", -3}, "k", "snap"},
			want: Command{Op: "pub", ID: 5, HasID: true, Topic: "book.X", Kind: "snap"},
			data: map[string]any{"b": []any{[]any{65000.5, uint64(1)}}, "n": int64(-3)},
		},
		{
			name: "pub string",
			msg:  kv{"op", "pub", "t", "a", "d", "héllo \"world\""},
			want: Command{Op: "pub", Topic: "a"},
			data: "héllo \"world\"",
		},
		{
			name: "pub null",
			msg:  kv{"op", "pub", "t", "a", "d", nil},
			want: Command{Op: "pub", Topic: "a"},
			data: nil,
		},
		{
			name: "auth",
			msg:  kv{"op", "auth", "id", 6, "token", "eyJ.abc.def"},
			want: Command{Op: "auth", ID: 6, HasID: true, Token: "eyJ.abc.def"},
		},
		{
			name: "refresh",
			msg:  kv{"id", 7, "op", "refresh", "token", "t2"},
			want: Command{Op: "refresh", ID: 7, HasID: true, Token: "t2"},
		},
		{
			name: "ping without id",
			msg:  kv{"op", "ping"},
			want: Command{Op: "ping"},
		},
		{
			name: "id zero and max",
			msg:  kv{"op", "ping", "id", uint64(math.MaxUint64)},
			want: Command{Op: "ping", ID: math.MaxUint64, HasID: true},
		},
		{
			name: "id zero",
			msg:  kv{"op", "ping", "id", 0},
			want: Command{Op: "ping", ID: 0, HasID: true},
		},
		{
			name: "unknown keys ignored",
			msg:  kv{"x", kv{"deep", []any{1, kv{"y", nil}}}, "op", "ping", "zz", "q", "ids", "no"},
			want: Command{Op: "ping"},
		},
		{
			name: "null fields are absent",
			msg:  kv{"op", "sub", "id", nil, "t", nil, "topics", nil, "since", nil, "limit", nil, "k", nil, "token", nil},
			want: Command{Op: "sub"},
		},
		{
			name: "null topic in since is skipped",
			msg:  kv{"op", "sub", "topics", []string{"a"}, "since", kv{"a", nil}},
			want: Command{Op: "sub", Topics: []string{"a"}, Since: map[string]pos{}},
		},
		{
			name: "empty topics",
			msg:  kv{"op", "sub", "topics", []string{}},
			want: Command{Op: "sub", Topics: []string{}},
		},
		{
			name: "huge limit is clamped",
			msg:  kv{"op", "pull", "limit", uint64(1) << 40},
			want: Command{Op: "pull", Limit: math.MaxInt32},
		},
		{
			name: "duplicate key last wins",
			msg:  kv{"op", "a", "op", "b", "topics", []string{"x", "y"}, "topics", []string{"z"}},
			want: Command{Op: "b", Topics: []string{"z"}},
		},
	}
	for _, f := range []Format{WSJSON, WSMsgpack, TCPMsgpack} {
		for _, tt := range tests {
			t.Run(f.String()+"/"+tt.name, func(t *testing.T) {
				body := marshal(t, f, tt.msg)
				var cmd Command
				// Stale state from a previous message must not survive.
				stale := marshal(t, f, kv{"op", "pub", "id", 99, "t", "old", "topics", []string{"o1", "o2", "o3"},
					"since", kv{"o1", kv{"e", "x", "s", 1}}, "limit", 5, "d", 1, "k", "snap", "token", "tok"})
				if err := Decode(f, stale, &cmd); err != nil {
					t.Fatal(err)
				}
				if err := Decode(f, body, &cmd); err != nil {
					t.Fatalf("Decode(%q): %v", body, err)
				}
				got := cmd
				got.since = nil
				data := got.Data
				got.Data, got.DataMsgpack = nil, false
				if tt.want.Topics == nil && len(got.Topics) == 0 {
					got.Topics = nil // an emptied reused slice is fine
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("got  %+v\nwant %+v", got, tt.want)
				}
				_, sent := indexKV(tt.msg, "d")
				if !sent {
					if data != nil {
						t.Fatalf("Data %q without d", data)
					}
					return
				}
				if cmd.DataMsgpack != f.Msgpack() {
					t.Fatalf("DataMsgpack %v for %v", cmd.DataMsgpack, f)
				}
				mustEqual(t, decodeBody(t, data, f), tt.data)
				// Data is a copy: scribbling on the message leaves it.
				before := append([]byte(nil), data...)
				for i := range body {
					body[i] = 0xff
				}
				if !bytes.Equal(cmd.Data, before) {
					t.Fatal("Data aliases the message")
				}
			})
		}
	}
}

func indexKV(m kv, key string) (any, bool) {
	for i := 0; i < len(m); i += 2 {
		if m[i] == key {
			return m[i+1], true
		}
	}
	return nil, false
}

// TestDecodeJSONExact checks what only JSON text can show: "d" keeps its
// bytes as sent, escapes in keys and strings are read, white space anywhere.
func TestDecodeJSONExact(t *testing.T) {
	tests := []struct {
		body string
		want Command
	}{
		{` { "op" : "pub" , "t":"a", "d" : {"a" : [1, 2.50, "x\u00e9"], "b":1e3} } `,
			Command{Op: "pub", Topic: "a", Data: []byte(`{"a" : [1, 2.50, "x\u00e9"], "b":1e3}`)}},
		{`{"\u006fp":"ping","i\u0064":12}`, Command{Op: "ping", ID: 12, HasID: true}},
		{`{"op":"auth","token":"a\"b\\c\/d\n\u00e9\ud83d\ude00"}`, Command{Op: "auth", Token: "a\"b\\c/d\né😀"}},
		{`{"op":"auth","token":"\ud800x"}`, Command{Op: "auth", Token: "\uFFFDx"}},
		{`{"op":"pub","d":-0.5e-3}`, Command{Op: "pub", Data: []byte(`-0.5e-3`)}},
		{`{"op":"pub","d":"s"}`, Command{Op: "pub", Data: []byte(`"s"`)}},
		{`{"op":"pub","d":true}`, Command{Op: "pub", Data: []byte(`true`)}},
		{`{"op":"pub","d":null}`, Command{Op: "pub", Data: []byte(`null`)}},
		{`{"op":"sub","since":{"we\"ird":{"e":"q","s":0}}}`,
			Command{Op: "sub", Since: map[string]topic.Position{`we"ird`: {Epoch: "q"}}}},
		{`{}`, Command{}},
	}
	for _, tt := range tests {
		var cmd Command
		if err := Decode(WSJSON, []byte(tt.body), &cmd); err != nil {
			t.Fatalf("Decode(%s): %v", tt.body, err)
		}
		cmd.since = nil
		if len(cmd.Topics) == 0 {
			cmd.Topics = nil
		}
		if !reflect.DeepEqual(cmd, tt.want) {
			t.Errorf("Decode(%s)\ngot  %+v\nwant %+v", tt.body, cmd, tt.want)
		}
	}
}

func TestDecodeBadRequest(t *testing.T) {
	jsonBodies := []string{
		``, ` `, `garbage`, `{"op":"sub"`, `{"op":"sub"}}`, `{"op":"sub"} {}`, `{op:"sub"}`,
		`[1,2]`, `"str"`, `42`, `null`, `true`,
		`{"op":1}`, `{"op":["sub"]}`,
		`{"id":-1}`, `{"id":1.5}`, `{"id":1.0}`, `{"id":"1"}`, `{"id":1e2}`, `{"id":true}`, `{"id":18446744073709551616}`, `{"id":-0}`,
		`{"t":5}`, `{"t":{}}`,
		`{"topics":"a"}`, `{"topics":[1]}`, `{"topics":["a",null]}`, `{"topics":{"a":1}}`,
		`{"op":"pull","since":[1]}`, `{"op":"pull","since":"x"}`, `{"op":"pull","since":{"e":1}}`,
		`{"op":"pull","since":{"s":-1}}`, `{"op":"pull","since":{"s":"1"}}`,
		`{"op":"sub","since":{"a":5}}`, `{"op":"sub","since":{"a":{"s":"x"}}}`, `{"op":"sub","since":[]}`,
		`{"since":{"a":{"e":true}},"op":"sub"}`,
		`{"limit":-1}`, `{"limit":"x"}`, `{"limit":2.5}`,
		`{"k":true}`, `{"token":[]}`,
		`{"op":"pub","d":1e400}`, `{"op":"pub","d":[1,-1e999]}`, "{\"op\":\"pub\",\"d\":\"\xff\"}",
	}
	for _, b := range jsonBodies {
		checkBadRequest(t, WSJSON, []byte(b))
	}
	mp := func(v any) []byte { return marshal(t, WSMsgpack, v) }
	msgpackBodies := [][]byte{
		nil, {0xc1}, {0x81}, {0x81, 0xa2, 'o', 'p'}, append(mp(kv{"op", "ping"}), 0x00),
		mp([]any{1, 2}), mp("str"), mp(42), mp(nil),
		mp(kv{"op", 1}), mp(kv{"op", []byte("sub")}),
		mp(kv{"id", -1}), mp(kv{"id", int64(math.MinInt64)}), mp(kv{"id", 1.0}), mp(kv{"id", "1"}), mp(kv{"id", true}),
		mp(kv{"t", 5}),
		mp(kv{"topics", "a"}), mp(kv{"topics", []any{1}}), mp(kv{"topics", []any{"a", nil}}),
		mp(kv{"op", "pull", "since", []any{1}}), mp(kv{"op", "pull", "since", kv{"e", 1}}), mp(kv{"op", "pull", "since", kv{"s", -1}}),
		mp(kv{"op", "sub", "since", kv{"a", 5}}), mp(kv{"op", "sub", "since", kv{"a", kv{"s", "x"}}}),
		mp(kv{"op", "sub", "since", kv{1, kv{"s", 1}}}),
		mp(kv{"limit", -1}), mp(kv{"limit", "x"}), mp(kv{"limit", 2.5}),
		mp(kv{"k", true}), mp(kv{"token", []any{}}),
		mp(kv{"op", "pub", "d", rawMsgpack{0xd4, 0x01, 0x00}}),       // ext: no JSON form
		mp(kv{"op", "pub", "d", rawMsgpack{0x92, 0x01, 0xc7, 0, 5}}), // ext nested
	}
	for _, b := range msgpackBodies {
		checkBadRequest(t, WSMsgpack, b)
		checkBadRequest(t, TCPMsgpack, b)
	}
}

func checkBadRequest(t *testing.T, f Format, body []byte) {
	t.Helper()
	cmd := Command{Op: "stale", Topics: []string{"x"}}
	err := Decode(f, body, &cmd)
	var ce *Error
	if !errors.As(err, &ce) || ce.Code != CodeBadRequest || ce.Msg == "" {
		t.Errorf("%v Decode(%q) = %v, want *Error 400", f, body, err)
		return
	}
	if strings.Contains(ce.Error(), "400") == false {
		t.Errorf("Error() %q lacks the code", ce.Error())
	}
	if cmd.Op != "" || len(cmd.Topics) != 0 || cmd.Since != nil || cmd.From != nil || cmd.Data != nil {
		t.Errorf("%v Decode(%q) left %+v after an error", f, body, cmd)
	}
}

func TestDecodeReusesStorage(t *testing.T) {
	var cmd Command
	body := []byte(`{"op":"sub","topics":["a","b","c"],"since":{"a":{"e":"x","s":1}}}`)
	if err := Decode(WSJSON, body, &cmd); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := Decode(WSJSON, body, &cmd); err != nil {
			t.Fatal(err)
		}
	})
	// Only the strings themselves: op, three topics, the since key and its epoch.
	if allocs > 6 {
		t.Errorf("Decode allocates %v times per call, want at most 6", allocs)
	}
}

// TestDecodeBadRequestKeepsID: a well-formed map with a valid id keeps the
// id when another field is wrong, before or after the id; an id that is
// not an unsigned integer, or a body that is no map, gives none.
func TestDecodeBadRequestKeepsID(t *testing.T) {
	mp := func(v any) []byte { return marshal(t, WSMsgpack, v) }
	tests := []struct {
		f     Format
		body  []byte
		id    uint64
		hasID bool
		isBad bool
	}{
		{WSJSON, []byte(`{"op":"sub","id":72,"topics":"book.BTCUSDT"}`), 72, true, true},
		{WSJSON, []byte(`{"op":5,"id":76}`), 76, true, true},
		{WSJSON, []byte(`{"op":"pull","since":"abc","i\u0064":9}`), 9, true, true},
		{WSJSON, []byte(`{"op":"sub","since":{"a.b":5},"id":0}`), 0, true, true},
		{WSJSON, []byte(`{"op":5,"id":-1}`), 0, false, true},
		{WSJSON, []byte(`{"op":5,"id":null}`), 0, false, true},
		{WSJSON, []byte(`{"op":5,"id":7`), 0, false, true},
		{WSMsgpack, mp(kv{"op", 5, "id", 76}), 76, true, true},
		{TCPMsgpack, mp(kv{"topics", []any{1, 2}, "id", 73}), 73, true, true},
		{TCPMsgpack, mp(kv{"op", 5, "id", "76"}), 0, false, true},
	}
	for _, tt := range tests {
		var cmd Command
		err := Decode(tt.f, tt.body, &cmd)
		if (err != nil) != tt.isBad || cmd.ID != tt.id || cmd.HasID != tt.hasID {
			t.Errorf("%v Decode(%q) = id %d hasID %v err %v, want id %d hasID %v", tt.f, tt.body, cmd.ID, cmd.HasID, err, tt.id, tt.hasID)
		}
	}
}
